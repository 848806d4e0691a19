"""Multi-channel attention (Kimura & Tanaka, CVPRW 2019) and the intentional attention mask
transformation (Kimura & Tanaka, MIRU 2019).

For every attribute k an attentional sub-network on the backbone's feature map ``F`` (B, h, w, C)
gives a mask ``M_k`` of the same shape (one spatial mask per feature channel); the attribute's
logit is a linear unit on the global average of ``F * M_k``. The channel importance of attribute
k is the spatial mean of ``M_k`` (B, C). At test time :func:`transform_masks` re-weights the masks
towards the channels (or regions) most important for the attribute, with no retraining.

What the papers leave open (their code was never released; seed notes Sec. 5.2) and what we
chose, all configurable:
- the sub-network: ``subnet_depth`` hidden layers of ``hidden`` channels per attribute (the first
  a ``kernel_size`` conv from F, the others 1x1), BN + ReLU, then a 1x1 conv to C channels and a
  sigmoid. The A sub-networks are independent (a conv with A * hidden outputs, then grouped 1x1
  convs), run as one tensor. Default: one 3x3 hidden layer of 16 per attribute, the smallest
  network that can see a neighbourhood and still costs little next to the backbone;
- the sigmoid (masks in [0, 1]) and per-attribute linear heads on ``GAP(F * M_k)``;
- the loss: mean binary cross-entropy over the attributes;
- the transformation rules (:data:`TRANSFORM_RULES`): the MIRU paper's exact rule could not be
  retrieved; we offer three readings of "emphasise the features important for the attribute".

Outputs: ``logits`` (B, A); ``attention`` (B, h, w, C, A), the masks; ``attention_spatial``
(B, h, w, A), each attribute's masks averaged over channels weighted by their importance;
``channel_importance`` (B, C, A).
"""

import keras
from keras import layers, ops

from zoo.models import backbones
from zoo.models import layers as zl
from zoo.models.losses import logits_loss
from zoo.registry import FeatureInfo, MapTap, register_model

TRANSFORM_RULES = {
    "top_channels": "masks of the channels outside the attribute's top `top_fraction` by importance are scaled by "
                    "(1 - strength)",
    "channel_weight": "each channel's mask is scaled by (importance / max importance) ** strength",
    "power": "every mask value m becomes m ** (1 + strength): low values are suppressed more than high ones",
}


def channel_importance(masks):
    """Per-attribute channel importance, the spatial mean of the masks: (B, h, w, C, A) -> (B, C, A)."""
    return ops.mean(masks, axis=(1, 2))


def transform_masks(masks, rule=None, strength=0.0, top_fraction=0.25):
    """The intentional attention mask transformation (MIRU 2019), a pure function of the masks
    (B, h, w, C, A) in [0, 1]. ``strength=0`` (or ``rule=None``) returns the masks unchanged.

    Rules (:data:`TRANSFORM_RULES`), with ``I`` the channel importance (B, C, A):
    - ``"top_channels"``: ``M'_c = M_c`` for the ``ceil(top_fraction * C)`` most important
      channels of each attribute, ``(1 - strength) * M_c`` for the others (strength in [0, 1]);
      exactly that many are kept even when importances tie (e.g. a saturated mask), ties going to the
      lower channel index;
    - ``"channel_weight"``: ``M'_c = M_c * (I_c / max_c I_c) ** strength``;
    - ``"power"``: ``M' = M ** (1 + strength)`` (sharpens each mask in space and across channels).
    """
    if rule is None or strength == 0:
        return masks
    zl.check_option("mask transform rule", rule, tuple(TRANSFORM_RULES))
    if rule == "power":
        return ops.power(masks, 1.0 + strength)
    importance = channel_importance(masks)  # (B, C, A)
    if rule == "channel_weight":
        relative = importance / ops.maximum(ops.max(importance, axis=1, keepdims=True), 1e-12)
        scale = ops.power(relative, strength)
    else:
        if not 0 <= strength <= 1:
            raise ValueError(f"the top_channels strength is a fraction in [0, 1], got {strength}")
        channels = masks.shape[3]
        keep = max(1, min(channels, int(-(-top_fraction * channels // 1))))
        top = ops.top_k(ops.transpose(importance, (0, 2, 1)), keep)[1]  # (B, A, keep) channel indices
        kept = ops.max(ops.one_hot(top, channels, dtype=masks.dtype), axis=2)  # (B, A, C), exactly `keep` ones
        scale = ops.where(ops.transpose(kept, (0, 2, 1)) > 0, 1.0, 1.0 - strength)
    return masks * ops.cast(ops.expand_dims(ops.expand_dims(scale, 1), 1), masks.dtype)


@keras.saving.register_keras_serializable(package="attention_zoo")
class MaskTransform(layers.Layer):
    """:func:`transform_masks` as a layer (no weights), so that a loaded model can be rebuilt with
    a transformation and keep its weights: ``zoo.load(name, mask_transform="top_channels",
    mask_strength=0.5)``."""

    def __init__(self, rule=None, strength=0.0, top_fraction=0.25, **kwargs):
        super().__init__(**kwargs)
        if rule is not None:
            zl.check_option("mask_transform", rule, tuple(TRANSFORM_RULES))
        self.rule, self.strength, self.top_fraction = rule, float(strength), float(top_fraction)

    def call(self, masks):
        return transform_masks(masks, self.rule, self.strength, self.top_fraction)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rule": self.rule, "strength": self.strength,
                "top_fraction": self.top_fraction}


@keras.saving.register_keras_serializable(package="attention_zoo")
class ChannelMasks(layers.Layer):
    """Sub-network outputs (B, h, w, A * C), attribute-major, -> sigmoid masks (B, h, w, C, A)."""

    def __init__(self, num_attributes, **kwargs):
        super().__init__(**kwargs)
        self.num_attributes = int(num_attributes)

    def call(self, x):
        _, h, w, channels = ops.shape(x)
        per_attribute = ops.reshape(x, (-1, h, w, self.num_attributes, channels // self.num_attributes))
        return ops.sigmoid(ops.transpose(per_attribute, (0, 1, 2, 4, 3)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[3] // self.num_attributes, self.num_attributes)

    def get_config(self):
        return {**super().get_config(), "num_attributes": self.num_attributes}


@keras.saving.register_keras_serializable(package="attention_zoo")
class MaskedPooling(layers.Layer):
    """``GAP(F * M_k)`` for every attribute: F (B, h, w, C), masks (B, h, w, C, A) -> (B, A, C)."""

    def call(self, features, masks):
        pooled = ops.mean(ops.expand_dims(features, -1) * ops.cast(masks, features.dtype), axis=(1, 2))
        return ops.transpose(pooled, (0, 2, 1))

    def compute_output_shape(self, features_shape, masks_shape):
        return (features_shape[0], masks_shape[-1], features_shape[-1])


@keras.saving.register_keras_serializable(package="attention_zoo")
class ChannelImportance(layers.Layer):
    """:func:`channel_importance` as a layer: (B, h, w, C, A) -> (B, C, A)."""

    def call(self, masks):
        return channel_importance(masks)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[3:])


@keras.saving.register_keras_serializable(package="attention_zoo")
class ImportanceWeightedMap(layers.Layer):
    """One spatial map per attribute: its channel masks averaged with their importance as weights,
    (B, h, w, C, A) -> (B, h, w, A), in [0, 1]."""

    def call(self, masks):
        importance = ops.expand_dims(ops.expand_dims(channel_importance(masks), 1), 1)  # (B, 1, 1, C, A)
        return ops.sum(masks * importance, axis=3) / ops.maximum(ops.sum(importance, axis=3), 1e-12)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[4])


def attention_subnetworks(features, num_attributes, hidden=16, subnet_depth=1, kernel_size=3, mask_bias_init=2.0,
                          sync_bn=False):
    """A independent attentional sub-networks on ``features`` (B, h, w, C) as one tensor; returns
    the masks (B, h, w, C, A) in [0, 1], which start near ``sigmoid(mask_bias_init)``."""
    channels = features.shape[-1]
    x = zl.conv(num_attributes * hidden, kernel_size, name="mask_conv1")(features)
    x = layers.ReLU(name="mask_relu1")(zl.batch_norm("mask_bn1", sync_bn)(x))
    for j in range(2, subnet_depth + 1):
        x = zl.GroupedPointwise(num_attributes, hidden, name=f"mask_conv{j}")(x)
        x = layers.ReLU(name=f"mask_relu{j}")(zl.batch_norm(f"mask_bn{j}", sync_bn)(x))
    x = zl.GroupedPointwise(num_attributes, channels, keras.initializers.Constant(mask_bias_init), name="mask_out")(x)
    return ChannelMasks(num_attributes, name="masks")(x)


def multichannel_attention(
    backbone="face",
    depth=20,
    num_classes=40,
    input_shape=(64, 64, 3),
    width=16,
    stem_stride=4,
    hidden=16,
    subnet_depth=1,
    kernel_size=3,
    mask_bias_init=2.0,
    mask_transform=None,
    mask_strength=0.0,
    top_fraction=0.25,
    backbone_weights=None,
    sync_bn=False,
    name=None,
):
    """Multi-channel attention for attributes (Kimura & Tanaka 2019) on the last stage of a backbone.

    Args:
        backbone, depth, width, stem_stride, backbone_weights: as
            :func:`zoo.models.abn.abn_multitask` (``"face"`` ResNet or keras.applications ResNet).
        num_classes: attributes A (one sub-network and one head each).
        hidden, subnet_depth, kernel_size: the sub-network (see the module docstring).
        mask_bias_init: initial bias of the masks' logits: the default 2 starts every mask near
            sigmoid(2) = 0.88, i.e. the model starts close to the plain backbone + linear heads
            and learns which channels and regions to close (0 starts at 0.5; a first CelebA run
            with 0 trained more slowly and ended below the plain baseline, see the weights card).
        mask_transform, mask_strength, top_fraction: the test-time transformation
            (:func:`transform_masks`; None or strength 0: none). It has no weights, so a trained
            model can be reloaded with any: ``zoo.load(name, mask_transform="power", mask_strength=1)``.

    Examples:
        >>> model = zoo.build("multichannel_faceresnet20")  # doctest: +SKIP
        >>> out = model(images)  # out["attention"]: (B, 4, 4, 64, 40); out["logits"]: (B, 40)
    """
    bb = backbones.make_backbone(backbone, depth, input_shape, width, stem_stride, backbone_weights, sync_bn)
    inputs = keras.Input(tuple(input_shape), name="image")
    features = bb.last_stage(bb.features(bb.preprocess(inputs)))
    masks = attention_subnetworks(features, num_classes, hidden, subnet_depth, kernel_size, mask_bias_init, sync_bn)
    masks = MaskTransform(mask_transform, mask_strength, top_fraction, name="mask_transform")(masks)
    logits = zl.PerAttributeDense(name="fc")(MaskedPooling(name="masked_gap")(features, masks))
    outputs = {
        "logits": zl.float32_output("logits")(logits),
        "attention": zl.float32_output("attention")(masks),
        "attention_spatial": zl.float32_output("attention_spatial")(ImportanceWeightedMap(name="spatial")(masks)),
        "channel_importance": zl.float32_output("channel_importance")(ChannelImportance(name="importance")(masks)),
    }
    default_name = f"multichannel_{backbones.variant_name(backbone, depth)}"
    return keras.Model(inputs, outputs, name=name or default_name)


MAPS = (
    MapTap("attention_spatial", "per_attribute", "each attribute's channel masks averaged, weighted by importance",
           unit_range=True),
    MapTap("attention", "per_channel", "one sigmoid mask per feature channel and attribute (B, h, w, C, A)",
           unit_range=True),
)


def feature_info(config):
    """Taps of :func:`multichannel_attention`: Grad-CAM on the backbone's last stage (F)."""
    last_stage, extractor_output, feature_layers = backbones.taps(config["backbone"], config["depth"])
    heads = ("mask_conv1", "mask_bn1", *(f"mask_{kind}{j}" for j in range(2, config.get("subnet_depth", 1) + 1)
                                         for kind in ("conv", "bn")), "mask_out", "fc")
    return FeatureInfo(gradcam_layer=last_stage, inner_layer=extractor_output, maps=MAPS, heads=heads,
                       feature_layers=feature_layers)


for _backbone, _depth in backbones.SPLIT_VARIANTS:
    _on = "a 64x64-face" if _backbone == "face" else "an ImageNet"
    _defaults, _test_config = backbones.variant_defaults(_backbone, _depth)
    register_model(
        f"multichannel_{backbones.variant_name(_backbone, _depth)}",
        "multichannel",
        multichannel_attention,
        logits_loss,
        feature_info,
        task="multilabel",
        description=f"multi-channel attention (Kimura & Tanaka) on {_on} ResNet-{_depth}",
        test_config=_test_config and {**_test_config, **({"hidden": 2} if _backbone == "face" else {})},
        backbone=_backbone,
        depth=_depth,
        num_classes=40,
        **_defaults,
    )
