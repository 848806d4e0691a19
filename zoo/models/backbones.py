"""The backbones of the zoo, in an open registry: a family picks one by name
(:func:`get_backbone`; :func:`register_backbone` adds one), and each declares the layer names of
its taps (Grad-CAM layer, inner layer, feature-extractor prefixes) without being built.

Two kinds:
- *split* backbones, a feature extractor (all stages but the last) and a last stage
  (:class:`SplitBackbone`), so that ABN can run a stride-1 copy of the last stage as its attention
  branch, the multi-task ABN the shared last stage once per attribute, and the multi-channel
  model attend to its output: ``cifar_resnet`` (:func:`cifar_resnet`: the CIFAR ResNets of the
  official ABN code and the Sharpen Focus ports' ResNet-18), ``face`` (the same ResNet sized for
  64x64 faces: a strided stem, 16x16, 8x8 and 4x4 maps at 64x64, a last stage cheap enough to run
  once per attribute), ``imagenet`` (a `keras.applications` ResNet-50/101/152, optionally from
  ImageNet weights);
- *trunks*, applied to a normalised image tensor and returning a :class:`Trunk` (output, taps,
  intermediate features by layer name): ``cifar_vgg16`` (cifar.torch's VGG-16-BN-Dropout; LTPA
  removes two of its pools) and the stride-free ``stride1_resnet18``, ``stride1_resnet50``,
  ``stride1_vgg11`` of loss-based attention.

Backend-agnostic: keras.layers only.
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


# The CIFAR ResNets: depth 6n+2 (He et al.; the official ABN code) has three stages of n blocks at
# 16/32/64; depth 18 is the Sharpen Focus ports' ResNet-18 (four stages of 2 basic blocks, 64-512).
CIFAR_RESNET18 = ("basic", (2, 2, 2, 2), (64, 128, 256, 512))
CIFAR_RESNET_WIDTHS = (16, 32, 64)


def cifar_resnet_layout(depth, width=None, block="auto"):
    """``(block, counts, widths)`` of the CIFAR ResNet of `depth`. `width`: None (the table's
    widths), the first stage's channels (an integer that scales them all: ResNet-20 at 8 is
    (8, 16, 32)) or every stage's widths."""
    if depth == 18:
        block, counts, widths = CIFAR_RESNET18
    else:
        block, n = cifar_block_type(depth, block)
        counts, widths = (n, n, n), CIFAR_RESNET_WIDTHS
    if width is None:
        return block, counts, widths
    if isinstance(width, (tuple, list)):
        if len(width) != len(counts) or any(int(w) != w or w < 1 for w in width):
            raise InvalidInput(f"width is the first stage's channels or the {len(counts)} stages' widths (positive "
                               f"integers), got {width!r}")
        return block, counts, tuple(int(w) for w in width)
    if int(width) != width or width < 1:
        raise InvalidInput(f"width is the first stage's channels, a positive integer; got {width!r}")
    return block, counts, tuple(int(width) * w // widths[0] for w in widths)


def cifar_resnet(depth=20, width=None, block="auto", stem_stride=1, mean=zl.CIFAR_MEAN, std=zl.CIFAR_STD,
                 sync_bn=False):
    """A CIFAR ResNet as a :class:`SplitBackbone` (the official ABN code's `models/cifar/resnet.py`,
    and the Sharpen Focus ports' ResNet-18): a 3x3 stem conv-BN-ReLU, then stages at stride 1, 2,
    2(, 2); the last stage is the split-off one. Layer names: ``stem_*``, ``stage{i}_block{j}_*``.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110; bottlenecks from 44 on with ``block="auto"``) or 18.
        width: see :func:`cifar_resnet_layout`.
        stem_stride: 1, 2 or 4: 3x3 conv at stride min(2, s), then a 2x2 max-pool when s = 4.
        mean, std: per-channel normalisation of [0, 255] pixels, in [0, 1] units.
    """
    zl.check_option("stem_stride", stem_stride, (1, 2, 4))
    block, counts, widths = cifar_resnet_layout(depth, width, block)
    last = len(counts)

    def features(x):
        x = zl.conv_bn(x, widths[0], 3, min(stem_stride, 2), name="stem", sync_bn=sync_bn)
        if stem_stride == 4:
            x = layers.MaxPooling2D(2, name="stem_pool")(x)
        for i in range(last - 1):
            x = zl.resnet_stage(x, block, widths[i], counts[i], 1 if i == 0 else 2, f"stage{i + 1}", sync_bn)
        return x

    def last_stage(h, strides=2, prefix=""):
        return zl.resnet_stage(h, block, widths[-1], counts[-1], strides, f"{prefix}stage{last}", sync_bn)

    return SplitBackbone(zl.preprocessing(mean, std), features, last_stage, *cifar_resnet_taps(depth, block))


def cifar_resnet_taps(depth=20, block="auto"):
    _, counts, _ = cifar_resnet_layout(depth, None, block)
    last = len(counts)
    return (f"stage{last}_block{counts[-1]}_out", f"stage{last - 1}_block{counts[-2]}_out",
            ("preprocess", "stem_", *(f"stage{i}_" for i in range(1, last))))


def face_resnet(depth=20, width=16, stem_stride=4, mean=CELEBA_MEAN, std=CELEBA_STD, sync_bn=False):
    """The 64x64-face ResNet: :func:`cifar_resnet` with a stem that reduces by `stem_stride` (4:
    16x16, 8x8 and 4x4 maps at 64x64) and CelebA's normalisation."""
    return cifar_resnet(depth, width, "auto", stem_stride, mean, std, sync_bn)


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


def imagenet_taps(depth=50):
    return "perception_conv5", "feature_extractor", ("rgb_to_bgr", "preprocess", "feature_extractor")


def taps(backbone, depth):
    """``(gradcam_layer, inner_layer, feature_layers)`` of the registered backbone `backbone` at
    `depth`, without building it: the last stage's output, the feature extractor's output and the
    extractor's name prefixes."""
    return get_backbone(backbone).taps(depth=depth)


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


def no_imagenet_weights(backbone_weights, name):
    if backbone_weights is not None:
        raise ValueError(f"backbone_weights is for the keras.applications (imagenet) backbones; the {name} has no "
                         "ImageNet weights: start from a zoo model with zoo.load instead")


def make_cifar_backbone(depth=20, input_shape=None, width=None, stem_stride=1, backbone_weights=None, sync_bn=False,
                        block="auto", mean=zl.CIFAR_MEAN, std=zl.CIFAR_STD):
    no_imagenet_weights(backbone_weights, "CIFAR ResNet")
    return cifar_resnet(depth, width, block, stem_stride, mean, std, sync_bn)


def make_face_backbone(depth=20, input_shape=None, width=16, stem_stride=4, backbone_weights=None, sync_bn=False):
    no_imagenet_weights(backbone_weights, "face ResNet")
    return face_resnet(depth, width, stem_stride, sync_bn=sync_bn)


def make_imagenet_backbone(depth=50, input_shape=(224, 224, 3), width=None, stem_stride=None, backbone_weights=None,
                           sync_bn=False):
    return imagenet_resnet(depth, input_shape, backbone_weights, sync_bn)


def make_backbone(backbone, depth, input_shape, width=16, stem_stride=4, backbone_weights=None, sync_bn=False,
                  **options):
    """The :class:`SplitBackbone` named `backbone` (a registered split backbone: ``"cifar_resnet"``,
    ``"face"``, ``"imagenet"``); `options` are the backbone's own (e.g. ``block``, ``mean``)."""
    spec = get_backbone(backbone)
    if spec.split is None:
        split = [name for name, b in _BACKBONES.items() if b.split is not None]
        raise InvalidInput(f"backbone {backbone!r} is a plain trunk; this architecture needs a split backbone (feature "
                           f"extractor + last stage): one of {', '.join(split)}")
    return spec.split(depth=depth, input_shape=input_shape, width=width, stem_stride=stem_stride,
                      backbone_weights=backbone_weights, sync_bn=sync_bn, **options)


# -- the open backbone registry ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Trunk:
    """A built backbone: its output features and the taps it declares (layer names in the model):
    ``gradcam_layer`` (its last features), ``inner_layer`` (an earlier map, for cross-layer
    methods) and ``feature_layers`` (the name prefixes of all its layers, frozen by ``finetune --freeze``);
    ``endpoints``: the intermediate features by layer name (keras-hub's ``pyramid_outputs``), for
    families that attend to several depths (LTPA)."""

    output: object
    gradcam_layer: str
    inner_layer: Optional[str]
    feature_layers: tuple
    endpoints: dict = dataclasses.field(default_factory=dict)  # layer name -> tensor, at every stage boundary


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone. ``trunk(x, **options) -> Trunk`` applies it to a normalised image
    tensor; ``taps(**options) -> (gradcam_layer, inner_layer, feature_layers)`` names the same taps
    without building (the names come from the one table both use). ``split(depth=, input_shape=,
    width=, stem_stride=, backbone_weights=, sync_bn=, **options)``: how to build it as a
    :class:`SplitBackbone` (ABN and the attribute families need one), if it can.
    ``num_stages``: how many strides its ``stage_strides`` option takes (0: it has none)."""

    name: str
    trunk: Optional[Callable]
    taps: Callable
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
    if taps is None:
        raise ValueError(f"backbone {name!r} needs its taps (the layer names it gives, without building)")
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


def get_trunk(name, user, strided_stages=False):
    """The registered backbone `name`, which must be a plain trunk (`user` names who needs it);
    ``strided_stages``: one whose downsampling is all in its ``stage_strides`` (no pooling)."""
    spec = get_backbone(name)
    ok = [n for n, b in _BACKBONES.items() if b.trunk is not None and (b.num_stages or not strided_stages)]
    if name not in ok:
        kind = "stride-free trunk backbone (all downsampling in stage_strides)" if strided_stages else "trunk backbone"
        raise InvalidInput(f"{user} needs a {kind}, not {name!r}: one of {', '.join(ok)}")
    return spec


def trunk_options(spec, input_shape, strides=None):
    """``{"stage_strides": ...}`` for a backbone with stage strides (`strides` or its default for
    the input size), ``{}`` for one without (then `strides` must be None)."""
    if spec.num_stages:
        return {"stage_strides": stage_strides(spec, input_shape, strides)}
    if strides is not None:
        raise InvalidInput(f"backbone {spec.name!r} has no stage_strides option; leave stage_strides unset")
    return {}


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
    endpoints = {}
    for i, (count, planes, stride) in enumerate(zip(counts, STRIDE1_RESNET_WIDTHS, strides)):
        x = zl.resnet_stage(x, block, channels(planes, width), count, stride, f"{prefix}stage{i + 1}", sync_bn)
        endpoints[f"{prefix}stage{i + 1}_block{count}_out"] = x
    return Trunk(x, *stride1_resnet_taps(depth, prefix), endpoints)


def stride1_vgg11_taps(prefix=""):
    n = len(VGG11_WIDTHS)
    return f"{prefix}vgg{n}_relu", f"{prefix}vgg{n - 2}_relu", (f"{prefix}vgg",)


def stride1_vgg11(x, width=1.0, stage_strides=None, sync_bn=False, prefix=""):
    """VGG-11 with its max-pools removed (the LBA code's `vgg_Capsule_Net.py`): eight 3x3
    conv-BN-ReLU at 64, 128, 256, 256, 512, 512, 512, 512 channels (x ``width``), all at stride 1;
    ``stage_strides`` (8 strides) strides chosen convolutions instead (none by default)."""
    strides = check_strides(stage_strides or (1,) * len(VGG11_WIDTHS), len(VGG11_WIDTHS))
    endpoints = {}
    for i, (c, stride) in enumerate(zip(VGG11_WIDTHS, strides)):
        x = zl.conv_bn(x, channels(c, width), 3, stride, name=f"{prefix}vgg{i + 1}", sync_bn=sync_bn)
        endpoints[f"{prefix}vgg{i + 1}_relu"] = x
    return Trunk(x, *stride1_vgg11_taps(prefix), endpoints)


# cifar.torch's VGG-16-BN-Dropout (the LTPA paper's VGG): (channels, dropout rate after the conv's
# ReLU), "M" = 2x2 max-pool
VGG16_CONFIG = [(64, 0.3), (64, 0), "M", (128, 0.4), (128, 0), "M", (256, 0.4), (256, 0.4), (256, 0), "M",
                (512, 0.4), (512, 0.4), (512, 0), "M", (512, 0.4), (512, 0.4), (512, 0), "M"]
VGG_BN_EPSILON = 1e-3  # cifar.torch passes eps 1e-3; momentum is Torch's 0.1 (= Keras 0.9), as in zoo.models.layers


def dropout_layer(x, rate, name):
    """Dropout, or nothing at rate 0 (``dropout_scale=0`` removes every dropout layer)."""
    return layers.Dropout(rate, name=name)(x) if rate else x


def vgg_conv_bn_relu(x, filters, name, sync_bn=False):
    """cifar.torch ConvBNReLU: 3x3 conv with bias -> BN -> ReLU (its Dropout: :func:`dropout_layer`)."""
    x = zl.conv(filters, 3, name=f"{name}_conv", use_bias=True)(x)
    x = zl.batch_norm(f"{name}_bn", sync_bn, epsilon=VGG_BN_EPSILON)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def cifar_vgg16_taps(removed_pools=()):
    return "conv13_relu", "conv10_relu", ("conv", "pool")


def cifar_vgg16(x, width=1.0, dropout_scale=1.0, removed_pools=(), sync_bn=False):
    """cifar.torch's VGG-16-BN-Dropout trunk: 13 conv-BN-ReLU(-Dropout) (``conv{i}_*``, x ``width``;
    dropout rates x ``dropout_scale``) and five 2x2 max-pools ``pool{k}``; ``removed_pools`` (1-based)
    are left out (LTPA's VGG-att removes pools 1 and 2). Endpoints: every conv's ReLU output and
    every pool's output, by layer name."""
    bad = [k for k in removed_pools if k not in range(1, 6)]
    if bad:
        raise InvalidInput(f"removed_pools are pool numbers 1-5 of the VGG-16, got {tuple(removed_pools)!r}")
    endpoints, pool_index, conv_index = {}, 0, 0
    for item in VGG16_CONFIG:
        if item == "M":
            pool_index += 1
            if pool_index not in removed_pools:
                x = endpoints[f"pool{pool_index}"] = layers.MaxPooling2D(2, name=f"pool{pool_index}")(x)
            continue
        conv_index += 1
        filters, dropout = item
        x = endpoints[f"conv{conv_index}_relu"] = vgg_conv_bn_relu(x, channels(filters, width), f"conv{conv_index}",
                                                                   sync_bn)
        x = dropout_layer(x, dropout * dropout_scale, f"conv{conv_index}_drop")
    return Trunk(x, *cifar_vgg16_taps(removed_pools), endpoints)


register_backbone("cifar_resnet", taps=cifar_resnet_taps, split=make_cifar_backbone,
                  description="CIFAR ResNet-20/32/44/56/110 and ResNet-18 (split; see cifar_resnet)")
register_backbone("face", taps=cifar_resnet_taps, split=make_face_backbone,
                  description="64x64-face ResNet (split; see face_resnet)")
register_backbone("imagenet", taps=imagenet_taps, split=make_imagenet_backbone,
                  description="keras.applications ResNet-50/101/152 (split; see imagenet_resnet)")
for _depth in STRIDE1_RESNETS:
    register_backbone(f"stride1_resnet{_depth}", functools.partial(stride1_resnet, depth=_depth),
                      functools.partial(stride1_resnet_taps, _depth),
                      description=f"ResNet-{_depth} without pooling or strides", num_stages=4)
register_backbone("stride1_vgg11", stride1_vgg11, stride1_vgg11_taps, description="VGG-11 without max-pools",
                  num_stages=len(VGG11_WIDTHS))
register_backbone("cifar_vgg16", cifar_vgg16, cifar_vgg16_taps,
                  description="cifar.torch VGG-16-BN-Dropout (optional pools removed; see cifar_vgg16)")
