"""Backbones shared by the attribute families, split where the attention models need them.

Each backbone is a *feature extractor* (all stages but the last) and a *last stage*, so that the
multi-task ABN can run a stride-1 copy of the last stage as its attention branch and the shared
last stage once per attribute, and the multi-channel attention model can attend to the output of
the last stage (backend-agnostic: keras.layers only).

- ``face``: a CIFAR-style ResNet sized for 64x64 faces (:func:`face_resnet`): a strided stem,
  then three stages of width (w, 2w, 4w) with (1, 2, 2) strides. With the default
  ``stem_stride=4`` (a 3x3 conv at stride 2 and a 2x2 max-pool, as ImageNet ResNets reduce by 4
  before their first stage) a 64x64 face gives 16x16, 8x8 and 4x4 maps: the same ratio of
  input to last-stage map (16) as the multi-task ABN paper's ResNet-101 at 224x224 (res4 14x14,
  res5 7x7), and a last stage cheap enough to run once per attribute (40x) on a CPU.
- ``imagenet``: a `keras.applications` ResNet-50/101/152 (:func:`imagenet_resnet`); it can start
  from ImageNet weights (``backbone_weights="imagenet"`` or a local ``*_notop.h5``).
"""

import collections
import dataclasses
import functools
from typing import Callable, Optional

import keras
from keras import layers

from zoo.errors import InvalidInput
from zoo.models import layers as zl

IMAGENET_DEPTHS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}
IMAGENET_CONV4_OUT = {50: "conv4_block6_out", 101: "conv4_block23_out", 152: "conv4_block36_out"}
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.resnet "caffe" preprocessing
# Stage widths of the registered *_faceresnet20 models: wider first stages than the CIFAR (16, 32,
# 64), same last stage (which multi-task ABN runs once per attribute). Chosen on CelebA's val split
# (id % 5 == 1; trained on id % 5 >= 2, plain model, 12 epochs): mean attribute accuracy 82.84% with
# (16, 32, 64), 83.63% with (32, 64, 64).
FACE_WIDTHS = (32, 64, 64)
CELEBA_MEAN = (0.509, 0.419, 0.373)  # of the 64x64 CelebA subset's training split (rounded)
CELEBA_STD = (0.302, 0.279, 0.278)

# A backbone split for the attention models:
# - preprocess(images) -> normalised input; features(x) -> h (the feature extractor's output);
# - last_stage(h, strides, prefix) -> the last stage applied to h; prefix "" is the backbone's own
#   (shared) last stage, any other prefix a new copy with its own weights (ABN's attention branch);
# - gradcam_layer / inner_layer: the names of the last stage's and the extractor's outputs;
# - feature_layers: name prefixes of the feature extractor (frozen by finetune --freeze).
SplitBackbone = collections.namedtuple(
    "SplitBackbone", "preprocess features last_stage gradcam_layer inner_layer feature_layers")


@keras.saving.register_keras_serializable(package="attention_zoo")
class ReverseChannels(layers.Layer):
    """RGB <-> BGR (for backbones trained with Caffe-style preprocessing)."""

    def call(self, x):
        return keras.ops.flip(x, axis=-1)


def cifar_block_type(depth, block="auto"):
    """Official rule (models/cifar/resnet.py): ``n = (depth - 2) // 6`` blocks per stage for
    both block types, bottlenecks from depth 44 on ("auto"). Returns ``(block, n)``.

    (The seed notes' "9n+2 for bottlenecks" is bearpaw's later variant, not the ABN code: the
    official ABN ResNet-110 has 18 bottlenecks per stage.)
    """
    if block == "auto":
        block = "bottleneck" if depth >= 44 else "basic"
    zl.check_option("block", block, ("auto", *zl.BLOCKS))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    return block, (depth - 2) // 6


def face_resnet(depth=20, width=16, stem_stride=4, mean=CELEBA_MEAN, std=CELEBA_STD, sync_bn=False):
    """The 64x64-face ResNet as a :class:`SplitBackbone` (basic blocks, ``(depth - 2) / 6`` per
    stage as in the CIFAR ResNets; bottlenecks from depth 44 on).

    Args:
        depth: 6n+2 (14, 20, 32, 44, 56).
        width: channels of the first stage (the stages have w, 2w, 4w), or the three stages' widths.
        stem_stride: 1, 2 or 4: 3x3 conv at stride min(2, s), then a 2x2 max-pool when s = 4.
        mean, std: per-channel normalisation of [0, 255] pixels, in [0, 1] units.
    """
    zl.check_option("stem_stride", stem_stride, (1, 2, 4))
    block, n = cifar_block_type(depth)
    widths = (width, 2 * width, 4 * width) if isinstance(width, int) else tuple(int(w) for w in width)
    if len(widths) != 3:
        raise ValueError(f"width is the first stage's channels or the three stages' widths, got {width!r}")

    def features(x):
        x = zl.conv_bn(x, widths[0], 3, min(stem_stride, 2), name="stem", sync_bn=sync_bn)
        if stem_stride == 4:
            x = layers.MaxPooling2D(2, name="stem_pool")(x)
        x = zl.resnet_stage(x, block, widths[0], n, 1, "stage1", sync_bn)
        return zl.resnet_stage(x, block, widths[1], n, 2, "stage2", sync_bn)

    def last_stage(h, strides=2, prefix=""):
        return zl.resnet_stage(h, block, widths[2], n, strides, f"{prefix}stage3", sync_bn)

    return SplitBackbone(zl.preprocessing(mean, std), features, last_stage, *taps("face", depth))


def imagenet_preprocess(x):
    """RGB [0, 255] -> the Caffe preprocessing of keras.applications.resnet (BGR, mean-subtracted)."""
    x = ReverseChannels(name="rgb_to_bgr")(x)
    return layers.Normalization(mean=list(IMAGENET_MEAN_BGR), variance=[1.0, 1.0, 1.0], name="preprocess")(x)


def imagenet_resnet(depth=50, input_shape=(224, 224, 3), backbone_weights=None, sync_bn=False):
    """A `keras.applications` ResNet-50/101/152 as a :class:`SplitBackbone`: the feature extractor
    is the network through conv4 (a nested model ``feature_extractor``), the last stage its conv5
    (``perception_conv5``, shared); a copy with another prefix is 3 new bottlenecks of width 512.

    `backbone_weights` goes to keras.applications (``"imagenet"`` downloads; a local
    ``*_notop.h5`` path works offline).
    """
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET_DEPTHS)}, got {depth}")
    from zoo import weights

    weights.check_backbone_weights(backbone_weights, f"resnet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5")
    app = getattr(keras.applications, IMAGENET_DEPTHS[depth])
    backbone = app(include_top=False, weights=backbone_weights, input_shape=tuple(input_shape))
    conv4 = backbone.get_layer(IMAGENET_CONV4_OUT[depth]).output
    feature_extractor = keras.Model(backbone.input, conv4, name="feature_extractor")
    conv5 = keras.Model(conv4, backbone.output, name="perception_conv5")

    def last_stage(h, strides=2, prefix=""):
        if not prefix:
            return conv5(h)
        return zl.resnet_stage(h, "bottleneck", 512, 3, strides, f"{prefix}conv5", sync_bn)

    return SplitBackbone(imagenet_preprocess, feature_extractor, last_stage, *taps("imagenet", depth))


def taps(backbone, depth):
    """``(gradcam_layer, inner_layer, feature_layers)`` of a backbone, without building it: the
    last stage's output, the feature extractor's output and the extractor's name prefixes."""
    if backbone == "face":
        _, n = cifar_block_type(depth)
        return f"stage3_block{n}_out", f"stage2_block{n}_out", ("preprocess", "stem_", "stage1_", "stage2_")
    return "perception_conv5", "feature_extractor", ("rgb_to_bgr", "preprocess", "feature_extractor")


# The split-backbone variants each attribute family (multi-task ABN, multi-channel, plain) registers
SPLIT_VARIANTS = (("face", 20), ("imagenet", 50), ("imagenet", 101))


def variant_name(backbone, depth):
    """The architecture-name part of a split-backbone variant: ``faceresnet20``, ``resnet50``."""
    return f"{'face' if backbone == 'face' else ''}resnet{depth}"


def variant_defaults(backbone, depth):
    """The builder defaults of a split-backbone variant (input size, widths) and its ``test_config``
    (None for ResNet-101: ResNet-50's code, deeper)."""
    if backbone == "face":
        return {"input_shape": (64, 64, 3), "width": FACE_WIDTHS}, {"width": 4}
    return {"input_shape": (224, 224, 3)}, ({"input_shape": (64, 64, 3)} if depth == 50 else None)


def make_face_backbone(depth, input_shape, width=16, stem_stride=4, backbone_weights=None, sync_bn=False):
    if backbone_weights is not None:
        raise ValueError("backbone_weights is for the keras.applications (imagenet) backbones; the face ResNet "
                         "has no ImageNet weights: start from a zoo model with zoo.load instead")
    return face_resnet(depth, width, stem_stride, sync_bn=sync_bn)


def make_imagenet_backbone(depth, input_shape, width=16, stem_stride=4, backbone_weights=None, sync_bn=False):
    return imagenet_resnet(depth, input_shape, backbone_weights, sync_bn)


def make_backbone(backbone, depth, input_shape, width=16, stem_stride=4, backbone_weights=None, sync_bn=False):
    """The :class:`SplitBackbone` named `backbone` (a registered split backbone: ``"face"``, ``"imagenet"``)."""
    spec = get_backbone(backbone)
    if spec.split is None:
        split = [name for name, b in _BACKBONES.items() if b.split is not None]
        raise InvalidInput(f"backbone {backbone!r} is a plain trunk; this architecture needs a split backbone (feature "
                           f"extractor + last stage): one of {', '.join(split)}")
    return spec.split(depth, input_shape, width, stem_stride, backbone_weights, sync_bn)


# -- the open backbone registry ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Trunk:
    """A built backbone: its output features and the taps it declares (layer names in the model):
    ``gradcam_layer`` (its last features), ``inner_layer`` (an earlier map, for cross-layer
    methods) and ``feature_layers`` (the name prefixes of all its layers, frozen by ``finetune --freeze``)."""

    output: object
    gradcam_layer: str
    inner_layer: Optional[str]
    feature_layers: tuple


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone. ``trunk(x, **options) -> Trunk`` applies it to a normalised image
    tensor; ``taps(**options) -> (gradcam_layer, inner_layer, feature_layers)`` names the same taps
    without building (the names come from the one table both use). ``split``: how to build it as a
    :class:`SplitBackbone` (ABN's multi-task and multi-channel families need one), if it can.
    ``num_stages``: how many strides its ``stage_strides`` option takes."""

    name: str
    trunk: Optional[Callable]
    taps: Optional[Callable]
    split: Optional[Callable] = None
    description: str = ""
    num_stages: int = 0


_BACKBONES: dict = {}


def register_backbone(name, trunk=None, taps=None, split=None, description="", num_stages=0):
    """Register a backbone under `name` (a family picks one by name: ``get_backbone(name)``)."""
    if name in _BACKBONES:
        raise ValueError(f"backbone {name!r} is registered twice")
    if trunk is None and split is None:
        raise ValueError(f"backbone {name!r} needs a trunk or a split builder")
    if (trunk is None) != (taps is None):
        raise ValueError(f"backbone {name!r}: a trunk builder comes with its taps (and only then)")
    _BACKBONES[name] = BackboneSpec(name, trunk, taps, split, description, num_stages)
    return _BACKBONES[name]


def get_backbone(name) -> BackboneSpec:
    """The registered backbone `name` (an error with close names if unknown)."""
    from zoo.registry import unknown_name_error

    if name not in _BACKBONES:
        raise unknown_name_error(name, list(_BACKBONES), "backbone")
    return _BACKBONES[name]


def backbone_names():
    return tuple(_BACKBONES)


def get_trunk(name, user):
    """The registered backbone `name`, which must be a plain trunk (`user` names who needs it)."""
    spec = get_backbone(name)
    if spec.trunk is None:
        trunks = [n for n, b in _BACKBONES.items() if b.trunk is not None]
        raise InvalidInput(f"{user} needs a plain trunk backbone, not the split backbone {name!r}: one of "
                           f"{', '.join(trunks)}")
    return spec


def channels(c, width):
    """`c` channels scaled by the width multiplier (at least 1)."""
    return max(1, int(round(c * width)))


# Stride-free backbones (loss-based attention, Shi et al. 2021): no pooling and, by default, no
# stride, so the last features keep the image's spatial layout (32x32x512 at a 32x32 input).
STRIDE1_MEAN = (0.491, 0.482, 0.447)  # the LBA code's CIFAR normalisation (also used for CIFAR-100)
STRIDE1_STD = (0.247, 0.243, 0.262)
STRIDE1_RESNETS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}
STRIDE1_RESNET_WIDTHS = (64, 128, 256, 512)
VGG11_WIDTHS = (64, 128, 256, 256, 512, 512, 512, 512)


def stage_strides(spec, input_shape, strides=None):
    """`strides` when given, else the LBA code's rule as the default of a stride-free backbone:
    none at 32x32; a larger input (its 64x64 variant) strides the second stage, so the features
    stay near 32x32."""
    if strides is not None:
        return tuple(strides)
    return tuple(2 if i == 1 and max(input_shape[:2]) > 32 else 1 for i in range(spec.num_stages))


def check_strides(strides, count):
    strides = tuple(int(s) for s in strides)
    if len(strides) != count or any(s not in (1, 2) for s in strides):
        raise InvalidInput(f"stage_strides is {count} strides of 1 or 2 (one per stage), got {strides!r}")
    return strides


def stride1_resnet_taps(depth, prefix=""):
    _, counts = STRIDE1_RESNETS[depth]
    return (f"{prefix}stage4_block{counts[3]}_out", f"{prefix}stage3_block{counts[2]}_out",
            (f"{prefix}stem_", *(f"{prefix}stage{i}_" for i in range(1, 5))))


def stride1_resnet(x, depth=18, width=1.0, stage_strides=(1, 1, 1, 1), stem_norm=False, sync_bn=False, prefix=""):
    """A ResNet-18 / -50 without pooling or strides (the LBA code's `conv_resnet.py`): a 3x3 stem
    conv of 64 (``stem_norm=False``: no BN or ReLU after it, as in that code, where ``bn1`` is
    defined and never used), then four stages at 64/128/256/512 channels (x ``width``; x4 for the
    bottlenecks of depth 50) with ``stage_strides`` (the 64x64 LBA variant strides stage 2)."""
    if depth not in STRIDE1_RESNETS:
        raise InvalidInput(f"stride-free ResNet depth is one of {sorted(STRIDE1_RESNETS)}, got {depth!r}")
    block, counts = STRIDE1_RESNETS[depth]
    strides = check_strides(stage_strides, 4)
    if stem_norm:
        x = zl.conv_bn(x, channels(64, width), 3, name=f"{prefix}stem", sync_bn=sync_bn)
    else:
        x = zl.conv(channels(64, width), 3, name=f"{prefix}stem_conv")(x)
    for i, (count, planes, stride) in enumerate(zip(counts, STRIDE1_RESNET_WIDTHS, strides)):
        x = zl.resnet_stage(x, block, channels(planes, width), count, stride, f"{prefix}stage{i + 1}", sync_bn)
    return Trunk(x, *stride1_resnet_taps(depth, prefix))


def stride1_vgg11_taps(prefix=""):
    n = len(VGG11_WIDTHS)
    return f"{prefix}vgg{n}_relu", f"{prefix}vgg{n - 2}_relu", (f"{prefix}vgg",)


def stride1_vgg11(x, width=1.0, stage_strides=None, sync_bn=False, prefix=""):
    """VGG-11 with its max-pools removed (the LBA code's `vgg_Capsule_Net.py`): eight 3x3
    conv-BN-ReLU at 64, 128, 256, 256, 512, 512, 512, 512 channels (x ``width``), all at stride 1;
    ``stage_strides`` (8 strides) strides chosen convolutions instead (none by default)."""
    strides = check_strides(stage_strides or (1,) * len(VGG11_WIDTHS), len(VGG11_WIDTHS))
    for i, (c, stride) in enumerate(zip(VGG11_WIDTHS, strides)):
        x = zl.conv_bn(x, channels(c, width), 3, stride, name=f"{prefix}vgg{i + 1}", sync_bn=sync_bn)
    return Trunk(x, *stride1_vgg11_taps(prefix))


register_backbone("face", split=make_face_backbone, description="64x64-face ResNet (split; see face_resnet)")
register_backbone("imagenet", split=make_imagenet_backbone,
                  description="keras.applications ResNet-50/101/152 (split; see imagenet_resnet)")
for _depth in STRIDE1_RESNETS:
    register_backbone(f"stride1_resnet{_depth}", functools.partial(stride1_resnet, depth=_depth),
                      functools.partial(stride1_resnet_taps, _depth),
                      description=f"ResNet-{_depth} without pooling or strides", num_stages=4)
register_backbone("stride1_vgg11", stride1_vgg11, stride1_vgg11_taps, description="VGG-11 without max-pools",
                  num_stages=len(VGG11_WIDTHS))
