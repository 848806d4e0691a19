"""Loss-based attention (LBA; Shi et al., "Loss-Based Attention for Interpreting Image-Level
Prediction of Convolutional Neural Networks", IEEE TIP 2021; official PyTorch code
xsshi2015/Loss-based-Attention-for-Interpreting-Image-level-Prediction-of-Convolutional-Neural-Networks,
commit 691a024, read for this module).

One linear layer ``fc`` (W, b) scores every image patch and the whole image:

- a head turns the stride-free backbone's features (32x32 at a 32x32 input) into P patch vectors
  x_p (a 9x9 conv at stride 4: a 6x6 grid of overlapping windows);
- patch logits ``f_p = W x_p + b``, ``s_p = ||f_p||_2``, ``alpha_p = s_p / sum_q s_q``, then
  ``alpha <- ReLU(alpha - t / gamma)`` renormalised to sum 1 (:class:`PatchWeights`);
- the image is the weighted sum ``z = sum_p alpha_p x_p`` and its logits ``W z + b``
  (``= sum_p alpha_p f_p``, the weights summing to 1);
- the loss ties the weights to the loss (:func:`lba_loss`):
  ``L = CE(logits, y) + lambda(e) * sum_p alpha_p CE(f_p, y)``, alpha not detached, lambda ramped
  in over the epochs (``patch_loss_weight``, a ``sigmoid_rampup`` loss schedule).

Heads: ``"conv"`` (9x9 conv stride 4 + BN + ReLU, 1x1 conv + BN + ReLU; gamma = the positions
of the backbone output, 1024 at 32x32, so the threshold 0.1/1024 barely acts) and
``"capsule"`` (16 primary units of a 9x9 conv at stride 4 with bias + BN + ReLU, the L2 norm over
the units, ``ReLU(. - b4)`` with a learned b4 per channel, 128 units of 1x1 conv + BN + ReLU:
64 slots x 36 positions = 2304 capsules of dimension 128; the weights are per capsule, thresholded
per position at 0.1/36 (gamma = 36) and renormalised; :class:`CapsuleWeights`).

The zoo's units are fused, with the same function as the code's: the 16 primary convolutions are
one convolution of 16 x 32 channels and the 128 small units one 1x1 convolution of 128 x 64
channels (BN is per channel either way).

Outputs: ``logits`` (B, K), ``patch_logits`` (B, gh, gw, K) and ``patch_weights`` (B, gh, gw, 1),
the declared attention map (kind ``patch_weights``: weights over the patch grid, summing to 1).
The patch windows cover the image from its top-left corner (the 9x9 windows at stride 4 leave the
last 3 rows and columns of a 32x32 map uncovered); the map declares them (``patch_window``), so
figures draw each weight over its own window (:func:`zoo.explain.maps.patch_map`).

Choices of the zoo (configurable): every width scales by ``width`` (compact variants); the
ResNet-50 variant uses standard bottlenecks (the code's cannot train: its shortcut is added in
place onto a ReLU output, so backward raises; its first bottleneck conv is a 3x3, ours a 1x1);
the multi-label image loss sums BCE over the classes as the code does.
"""

import keras
import numpy as np
from keras import layers, ops

from zoo import registry
from zoo.errors import InvalidInput
from zoo.models import backbones
from zoo.models import layers as zl
from zoo.registry import FeatureInfo, MapTap

THRESHOLD = 0.1  # t of alpha <- ReLU(alpha - t / gamma)
PATCH_LOSS_WEIGHT = 0.1  # lambda after the ramp-up
RAMP_EPOCHS = 80
EPSILON = 1e-12


def l2_norm(x, axis=-1):
    """``||x||_2`` over `axis` (an epsilon keeps its gradient finite at x = 0)."""
    return ops.sqrt(ops.sum(ops.square(x), axis=axis) + EPSILON)


def renormalised(weights, axis=-1):
    return weights / (ops.sum(weights, axis=axis, keepdims=True) + EPSILON)


@keras.saving.register_keras_serializable(package="attention_zoo")
class PatchWeights(layers.Layer):
    """alpha from patch logits (B, P, K): ``s_p / sum s``, then ``ReLU(alpha - threshold)``
    renormalised to sum 1 (the code's attention layer, ``threshold = t / gamma``)."""

    def __init__(self, threshold, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, patch_logits):
        alpha = renormalised(l2_norm(ops.cast(patch_logits, "float32")))
        return renormalised(ops.relu(alpha - self.threshold))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="attention_zoo")
class CapsuleWeights(layers.Layer):
    """Capsule logits (B, P, S, K) -> ``(capsule weights (B, P, S), position weights (B, P))``:
    alpha over all P x S capsules from ``||f||_2``; a position's weight is the sum over its S slots,
    thresholded (``ReLU(. - threshold)``) and renormalised; the capsules of a zeroed position are
    zeroed and the capsule weights renormalised (the code's capsule attention)."""

    def __init__(self, threshold, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, capsule_logits):
        alpha = renormalised(l2_norm(ops.cast(capsule_logits, "float32")), axis=(1, 2))  # (B, P, S)
        positions = renormalised(ops.relu(ops.sum(alpha, axis=-1) - self.threshold))
        kept = ops.cast(positions > 0, alpha.dtype)[..., None]
        return renormalised(alpha * kept, axis=(1, 2)), positions

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]), tuple(input_shape[:2])

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="attention_zoo")
class WeightedSum(layers.Layer):
    """``sum_p w_p x_p``: weights (B, *P) and vectors (B, *P, C) -> (B, C)."""

    def call(self, weights, vectors):
        weights = ops.cast(weights, vectors.dtype)
        axes = tuple(range(1, len(weights.shape)))
        return ops.sum(weights[..., None] * vectors, axis=axes)

    def compute_output_shape(self, weights_shape, vectors_shape):
        return (vectors_shape[0], vectors_shape[-1])


@keras.saving.register_keras_serializable(package="attention_zoo")
class PositionNorm(layers.Layer):
    """Primary capsules (B, h, w, U, C) -> ``ReLU(||.||_2 over the U units - b4)`` (B, h, w, C),
    with a learned b4 per channel (the code initialises it from a standard normal)."""

    def build(self, input_shape):
        self.offset = self.add_weight(name="offset", shape=(input_shape[-1],),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))

    def call(self, units):
        norms = l2_norm(units, axis=-2)
        return ops.relu(norms - ops.cast(self.offset, norms.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-2]) + (input_shape[-1],)


@keras.saving.register_keras_serializable(package="attention_zoo")
class SlotSum(layers.Layer):
    """(B, P, S, K) -> (B, P, K): the sum over the S slots of each position."""

    def call(self, x):
        return ops.sum(x, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[3])


def check_grid(features, kernel_size, stride):
    h, w = features.shape[1:3]
    if h < kernel_size or w < kernel_size:
        raise InvalidInput(f"the LBA head's {kernel_size}x{kernel_size} patch convolution needs backbone features of "
                           f"at least {kernel_size}x{kernel_size}; these are {h}x{w} (a larger input, or fewer "
                           "stage_strides of 2)")
    return (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1


def conv_head(features, fc, grid, channels, kernel_size, stride, threshold, sync_bn):
    """Patch vectors from a strided conv + a 1x1 conv; alpha over them; the weighted image vector."""
    x = zl.conv_bn(features, channels, kernel_size, stride, "patch", sync_bn=sync_bn, padding="valid")
    x = zl.conv_bn(x, channels, 1, 1, "patch_proj", sync_bn=sync_bn)
    patches = layers.Reshape((grid[0] * grid[1], channels), name="patches")(x)
    patch_logits = fc(patches)  # (B, P, K)
    alpha = PatchWeights(threshold, name="alpha")(patch_logits)
    return patch_logits, alpha, WeightedSum(name="image_vector")(alpha, patches)


def capsule_head(features, fc, grid, primary_units, primary_channels, capsule_units, capsule_slots, kernel_size,
                 stride, threshold, sync_bn):
    """Primary capsules (one fused conv of U x C channels), the per-position norm, the capsules
    (one fused 1x1 conv of D x S channels, D = capsule dimension); alpha per capsule."""
    x = zl.conv_bn(features, primary_units * primary_channels, kernel_size, stride, "primary", sync_bn=sync_bn,
                   padding="valid", use_bias=True)
    x = layers.Reshape((*grid, primary_units, primary_channels), name="primary_units")(x)
    x = PositionNorm(name="primary_norm")(x)
    x = zl.conv_bn(x, capsule_units * capsule_slots, 1, 1, "capsule", sync_bn=sync_bn)
    x = layers.Reshape((grid[0] * grid[1], capsule_units, capsule_slots), name="capsule_units")(x)
    capsules = layers.Permute((1, 3, 2), name="capsules")(x)  # (B, P, S, D)
    capsule_logits = fc(capsules)  # (B, P, S, K)
    weights, positions = CapsuleWeights(threshold, name="alpha")(capsule_logits)
    patch_logits = SlotSum(name="position_logits")(capsule_logits)  # per position, over the slots (incl. S * b)
    return patch_logits, positions, WeightedSum(name="image_vector")(weights, capsules)


HEADS = ("conv", "capsule")


def loss_based_attention(
    backbone="stride1_resnet18",
    head="conv",
    num_classes=10,
    input_shape=(32, 32, 3),
    width=1.0,
    stage_strides=None,
    reduce_channels=None,
    kernel_size=9,
    stride=4,
    head_channels=512,
    threshold=THRESHOLD,
    gamma=None,
    primary_units=16,
    primary_channels=32,
    capsule_units=128,
    capsule_slots=64,
    mean=backbones.STRIDE1_MEAN,
    std=backbones.STRIDE1_STD,
    sync_bn=False,
    name=None,
):
    """Loss-based attention on a registered stride-free backbone (see the module docstring).

    Args:
        backbone: a registered trunk (``stride1_resnet18``, ``stride1_resnet50``, ``stride1_vgg11``).
        head: ``"conv"`` or ``"capsule"``.
        width: multiplies every channel count (backbone and head), for compact variants.
        stage_strides: the backbone's strides per stage; None: 1 everywhere at 32x32, stride 2 at
            the second stage for larger inputs (the code's 64x64 variant).
        reduce_channels: a 1x1 conv + BN + ReLU to this many channels (x width) before the head
            (the ResNet-50 variant: 2048 -> 512); None: none.
        kernel_size, stride: the patch convolution (9, 4: a 6x6 grid at 32x32 features).
        head_channels: the conv head's channels (x width).
        threshold, gamma: ``alpha <- ReLU(alpha - threshold / gamma)``; gamma None: the code's, the
            backbone output's positions (conv head, 1024 at 32x32) or the patch positions (capsule, 36).
        primary_units, primary_channels, capsule_units, capsule_slots: the capsule head (16, 32,
            128 = capsule dimension, 64 slots per position; all but the unit count x width).
    """
    zl.check_option("head", head, HEADS)
    spec = backbones.get_trunk(backbone, "loss-based attention", strided_stages=True)
    strides = backbones.stage_strides(spec, input_shape, stage_strides)
    inputs = keras.Input(tuple(input_shape), name="image")
    trunk = spec.trunk(zl.preprocessing(mean, std)(inputs), width=width, stage_strides=strides, sync_bn=sync_bn)
    features = trunk.output
    if reduce_channels:
        features = zl.conv_bn(features, backbones.channels(reduce_channels, width), 1, 1, "reduce", sync_bn=sync_bn)
    grid = check_grid(features, kernel_size, stride)
    fc = layers.Dense(num_classes, name="fc")  # shared by the patches and the image (W, b)
    if head == "conv":
        gamma = features.shape[1] * features.shape[2] if gamma is None else gamma
        patch_logits, alpha, vector = conv_head(features, fc, grid, backbones.channels(head_channels, width),
                                                kernel_size, stride, threshold / gamma, sync_bn)
    else:
        gamma = grid[0] * grid[1] if gamma is None else gamma
        scaled = (backbones.channels(c, width) for c in (primary_channels, capsule_units, capsule_slots))
        patch_logits, alpha, vector = capsule_head(features, fc, grid, primary_units, *scaled, kernel_size, stride,
                                                   threshold / gamma, sync_bn)
    outputs = {
        "logits": zl.float32_output("logits")(fc(vector)),
        "patch_logits": zl.float32_output("patch_logits")(layers.Reshape((*grid, num_classes))(patch_logits)),
        "patch_weights": zl.float32_output("patch_weights")(layers.Reshape((*grid, 1))(alpha)),
    }
    return keras.Model(inputs, outputs, name=name or "lba")


def multilabel_patch_loss(y_true, patch_logits):
    """``-max_{c in positives} log sigmoid(f_pc)`` per patch (B, P); 0 for an image without positives."""
    positive = ops.cast(y_true, "float32")[:, None, :] > 0.5
    best = ops.max(ops.where(positive, patch_logits, -1e9), axis=-1)
    return ops.where(ops.any(positive, axis=-1), ops.softplus(-best), 0.0)


def multiclass_patch_loss(y_true, patch_logits, label_smoothing=0.0):
    """``CE(f_p, y)`` per patch (B, P), for integer (B,) or one-hot / mixed (B, K) targets (the
    task's loss tells integer from one-hot targets by their rank, which the patch axis changes)."""
    k = patch_logits.shape[-1]
    target = ops.one_hot(ops.cast(y_true, "int32"), k) if len(y_true.shape) == 1 else ops.cast(y_true, "float32")
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / k
    return -ops.sum(target[:, None, :] * ops.log_softmax(patch_logits, axis=-1), axis=-1)


def lba_loss(y_true, outputs, task, patch_loss_weight=PATCH_LOSS_WEIGHT, label_smoothing=0.0):
    """Per example: ``CE(logits, y) + patch_loss_weight * sum_p alpha_p CE(f_p, y)`` (the paper's
    loss; alpha not detached). Multi-label: BCE summed over the classes, and the patch loss
    ``-max_{c in positives} log sigmoid(f_pc)`` (:func:`multilabel_patch_loss`). The weight is ramped
    in by the architecture's loss schedule (``sigmoid_rampup``: 0 in epoch 0, then
    ``0.1 exp(-5 (1 - e/80)^2)``, 0.1 from epoch 80)."""
    logits = ops.cast(outputs["logits"], "float32")
    patch_logits = ops.cast(outputs["patch_logits"], "float32")
    k = patch_logits.shape[-1]
    patch_logits = ops.reshape(patch_logits, (-1, patch_logits.shape[1] * patch_logits.shape[2], k))
    alpha = ops.reshape(ops.cast(outputs["patch_weights"], "float32"), (-1, patch_logits.shape[1]))
    if task.name == "multilabel":
        image = task.loss(y_true, logits, label_smoothing) * k  # the task's loss is the mean over classes
        patches = multilabel_patch_loss(y_true, patch_logits)
    else:
        image = task.loss(y_true, logits, label_smoothing)
        patches = multiclass_patch_loss(y_true, patch_logits, label_smoothing)
    return image + patch_loss_weight * ops.sum(alpha * patches, axis=-1)


LBA_SCHEDULES = {"patch_loss_weight": {"start": 0.0, "end": PATCH_LOSS_WEIGHT, "epochs": RAMP_EPOCHS,
                                       "shape": "sigmoid_rampup", "per": "epoch"}}


def patch_window(config, spec):
    """``(size, stride)`` of each patch's window in input pixels: the patch convolution's window
    on the backbone features, scaled by the backbone's total stride (the rule patch precision /
    recall uses; the receptive field of the backbone's own convolutions, wider, is not counted)."""
    scale = int(np.prod(backbones.stage_strides(spec, config["input_shape"], config.get("stage_strides"))))
    return config.get("kernel_size", 9) * scale, config.get("stride", 4) * scale


def feature_info(config):
    """Grad-CAM on the head's last patch features (the same grid as the patch weights), the
    backbone output as the inner layer; the patch weights with their logits and windows."""
    spec = backbones.get_backbone(config.get("backbone", "stride1_resnet18"))
    last, _, feature_layers = spec.taps()
    gradcam = "patch_proj_relu" if config.get("head", "conv") == "conv" else "capsule_relu"
    maps = (MapTap("patch_weights", "patch_weights", "alpha: each patch's weight in the image decision (sums to 1)",
                   patch_logits="patch_logits", patch_window=patch_window(config, spec)),)
    return FeatureInfo(gradcam_layer=gradcam, inner_layer=last, maps=maps, heads=("fc",),
                       feature_layers=("preprocess", *feature_layers, *(("reduce_",) if config.get("reduce_channels")
                                                                         else ())))


# The family's architectures: name -> builder arguments; each also at the compact widths of WIDTHS.
VARIANTS = {
    "lba_resnet18": {"backbone": "stride1_resnet18", "head": "conv"},
    "lba_resnet50": {"backbone": "stride1_resnet50", "head": "conv", "reduce_channels": 512},
    "lba_capsule_resnet18": {"backbone": "stride1_resnet18", "head": "capsule"},
    "lba_capsule_vgg11": {"backbone": "stride1_vgg11", "head": "capsule"},
}
WIDTHS = {"": 1.0, "_w025": 0.25, "_w0125": 0.125}

for _name, _arguments in VARIANTS.items():
    for _suffix, _width in WIDTHS.items():
        registry.register_model(
            f"{_name}{_suffix}", "lba", loss_based_attention, lba_loss, feature_info, loss_schedules=LBA_SCHEDULES,
            test_config={"width": 0.0625},
            description=f"loss-based attention, {_arguments['head']} head on a stride-free "
                        f"{_arguments['backbone'].split('_')[1]}{f' at width {_width}' if _width != 1 else ''} "
                        "(Shi et al., TIP 2021)",
            num_classes=10, input_shape=(32, 32, 3), width=_width, **_arguments)
