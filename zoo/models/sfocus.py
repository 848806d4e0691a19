"""Sharpen Focus (Wang et al., "Sharpen Focus: Learning with Attention Separability and
Consistency", ICCV 2019, arXiv 1811.07484): the attention is the network's own class-specific
Grad-CAM (:func:`zoo.gradcam.gradcam_from`), and training adds two terms built from it.

- Separability at a layer (the paper's attention separability loss):
  ``L_AS = 2 * sum_ij min(A^T, A^conf) * M / sum_ij (A^T + A^conf)`` with the soft mask
  ``M = sigmoid(omega * (A^T / max A^T - sigma))``; T the true class, conf the most confusing one
  (:func:`zoo.gradcam.confusing_class`). 0 for disjoint maps, up to 1 for identical ones.
- Consistency between an inner layer and the last: ``L_AC = theta - sum_ij A^T_in * M / sum_ij A^T_in``
  with the *last* layer's mask bilinearly upsampled to the inner map (``mask_from="last"``; the
  first public port used the inner layer's own mask: ``mask_from="inner"``).
- Total ``L = CE + L_AS(last) + L_AS(inner) + L_AC``.

The objective (``zoo train ARCH --objective sharpen_focus``, or ``TrainConfig(objective=...)``)
applies to any single-label architecture that declares a Grad-CAM layer and an inner layer; its
terms are logged as ``as_last``, ``as_inner`` and ``ac``. ``sfocus_resnet{18,20}`` are CIFAR
ResNets (32x32) that train with it by default (``--objective none``: plain cross-entropy).

There is no official code. The constants are those of the second public port, not the paper's
(unverified, all loss arguments): ``sigma = 0.55``, ``omega = 100``, ``theta = 0.8``, weights
1, 1, 1, Grad-CAM weights from the positive gradients (``positive_gradients``, both ports), first
order (the Grad-CAM weights are constants, as in both ports; ``second_order=True`` differentiates
through them). Unlike both ports every maximum, sum and normalisation here is per example, then
averaged over the batch, and no Grad-CAM pass runs in evaluation.
"""

import keras
from keras import layers, ops

from zoo import registry, tasks
from zoo.errors import InvalidInput
from zoo.gradcam import gradcam_from
from zoo.models import backbones
from zoo.models import layers as zl
from zoo.models.losses import logits_loss

SIGMA, OMEGA, THETA = 0.55, 100.0, 0.8
EPSILON = 1e-8


def per_example_max(maps):
    """The maximum of each map (B, h, w) -> (B, 1, 1)."""
    return ops.max(maps, axis=(1, 2), keepdims=True)


def soft_mask(maps, sigma=SIGMA, omega=OMEGA):
    """``sigmoid(omega * (A / max A - sigma))`` per example (B, h, w): ~1 where a map is above
    `sigma` of its own maximum, ~0 below (an all-zero map gives ``sigmoid(-omega * sigma)``)."""
    scaled = maps / ops.maximum(per_example_max(maps), EPSILON)
    return ops.sigmoid(omega * (scaled - sigma))


def separability(true_map, confusing_map, sigma=SIGMA, omega=OMEGA):
    """``L_AS`` (B,) of Grad-CAMs (B, h, w) of the true and the most confusing class: their
    overlap inside the true class's mask, relative to their total mass."""
    mask = soft_mask(true_map, sigma, omega)
    overlap = ops.sum(ops.minimum(true_map, confusing_map) * mask, axis=(1, 2))
    total = ops.sum(true_map + confusing_map, axis=(1, 2))
    return 2.0 * overlap / ops.maximum(total, EPSILON)


def upsample_to(maps, like):
    """Bilinearly resize maps (B, h, w) to the spatial size of `like` (B, H, W)."""
    size = tuple(like.shape[1:3])
    if tuple(maps.shape[1:3]) == size:
        return maps
    return ops.image.resize(maps[..., None], size, interpolation="bilinear")[..., 0]


def consistency(inner_true_map, last_true_map, theta=THETA, sigma=SIGMA, omega=OMEGA, mask_from="last"):
    """``L_AC`` (B,): `theta` minus the share of the inner layer's true-class map inside the
    mask of the last layer's (upsampled), or of its own with ``mask_from="inner"``."""
    if mask_from not in ("last", "inner"):
        raise ValueError(f"mask_from must be 'last' or 'inner', got {mask_from!r}")
    source = upsample_to(last_true_map, inner_true_map) if mask_from == "last" else inner_true_map
    mask = soft_mask(source, sigma, omega)
    inside = ops.sum(inner_true_map * mask, axis=(1, 2))
    return theta - inside / ops.maximum(ops.sum(inner_true_map, axis=(1, 2)), EPSILON)


def sharpen_focus_terms(y_true, outputs, task, sigma=SIGMA, omega=OMEGA, theta=THETA, mask_from="last",
                        positive_gradients=True, separability_weight=1.0, consistency_weight=1.0):
    """The Sharpen Focus terms (B,) from the Grad-CAMs of the true and the most confusing class at
    the last (``gradcam``) and the inner layer: ``as_last``, ``as_inner`` (``L_AS``) and ``ac`` (``L_AC``)."""
    def cam(layer, which):
        return gradcam_from(outputs[f"features/{layer}"], outputs[f"gradients/{layer}/{which}"], positive_gradients)

    last_true, inner_true = cam("last", "true"), cam("inner", "true")
    return {
        "as_last": separability_weight * separability(last_true, cam("last", "confusing"), sigma, omega),
        "as_inner": separability_weight * separability(inner_true, cam("inner", "confusing"), sigma, omega),
        "ac": consistency_weight * consistency(inner_true, last_true, theta, sigma, omega, mask_from),
    }


def sharpen_focus_gradients(model, second_order=False, inner_layer=None):
    """What the terms read: features and true / confusing class gradients at the declared
    Grad-CAM layer and at `inner_layer` (None: the declared inner layer)."""
    if tasks.task_of(model).name != "multiclass":
        raise InvalidInput(f"the Sharpen Focus objective is for single-label (multiclass) models: its confusing class "
                           f"is the best wrong class; {model.name} is {tasks.task_of(model).name} (no multi-label rule "
                           "is implemented)")
    info = registry.feature_info(model)
    inner = inner_layer or info.inner_layer
    if inner is None:
        raise InvalidInput(f"{model.name} declares no inner layer for Sharpen Focus's second Grad-CAM: name one with "
                           "--loss-arg inner_layer=LAYER (Python: TrainConfig(loss_kwargs={'inner_layer': 'LAYER'}))")
    return registry.GradientRequest(taps=(("last", info.gradcam_layer), ("inner", inner)),
                                    classes=("true", "confusing"), second_order=bool(second_order))


SHARPEN_FOCUS = registry.register_objective(registry.Objective(
    "sharpen_focus", sharpen_focus_terms, parts=("as_last", "as_inner", "ac"), gradients=sharpen_focus_gradients,
    options=("second_order", "inner_layer"),
    description="Sharpen Focus (Wang et al., ICCV 2019): attention separability and cross-layer consistency of "
                "Grad-CAM"))


# The depths registered (CIFAR ResNets: the registered ``cifar_resnet`` backbone)
CIFAR_DEPTHS = (18, 20)


def sfocus_resnet(depth=18, num_classes=10, input_shape=(32, 32, 3), width=None, mean=zl.CIFAR_MEAN, std=zl.CIFAR_STD,
                  sync_bn=False, name=None):
    """A CIFAR ResNet (``depth`` 18: the ports' ResNet-18, stages 64-512 at 32, 16, 8, 4 px; 20:
    He et al.'s CIFAR ResNet-20, stages 16-64) + global average pooling + a linear layer ``fc``;
    ``width`` sets the first stage's channels and scales the others (default: the paper's);
    ``mean``, ``std``: the per-channel normalisation of [0, 255] pixels, in [0, 1] units.

    Outputs: ``logits`` (B, num_classes). Its attention is Grad-CAM: the last stage (4x4 for
    ResNet-18) and the stage before it (8x8) are the declared Grad-CAM and inner layers."""
    if depth not in CIFAR_DEPTHS:
        raise InvalidInput(f"sfocus_resnet depth is one of {CIFAR_DEPTHS}, got {depth!r}")
    bb = backbones.make_backbone("cifar_resnet", depth, input_shape, width, 1, None, sync_bn, mean=mean, std=std)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = bb.last_stage(bb.features(bb.preprocess(inputs)))
    logits = layers.Dense(num_classes, name="fc")(layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inputs, {"logits": zl.float32_output("logits")(logits)}, name=name or f"sfocus_resnet{depth}")


def feature_info(config):
    last, inner, feature_layers = backbones.cifar_resnet_taps(config["depth"])
    return registry.FeatureInfo(gradcam_layer=last, inner_layer=inner, maps=(), heads=("fc",),
                                feature_layers=feature_layers)


for _depth in CIFAR_DEPTHS:
    registry.register_model(
        f"sfocus_resnet{_depth}", "sfocus", sfocus_resnet, logits_loss, feature_info, objective="sharpen_focus",
        test_config={"width": 4},
        description=f"CIFAR ResNet-{_depth} trained with Sharpen Focus (Wang et al., ICCV 2019) by default",
        depth=_depth, num_classes=10, input_shape=(32, 32, 3))
