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

import keras
from keras import layers

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


def face_resnet(depth=20, width=16, stem_stride=4, mean=CELEBA_MEAN, std=CELEBA_STD, sync_bn=False):
    """The 64x64-face ResNet as a :class:`SplitBackbone` (basic blocks, ``(depth - 2) / 6`` per
    stage as in the CIFAR ResNets; bottlenecks from depth 44 on).

    Args:
        depth: 6n+2 (14, 20, 32, 44, 56).
        width: channels of the first stage (the stages have w, 2w, 4w), or the three stages' widths.
        stem_stride: 1, 2 or 4: 3x3 conv at stride min(2, s), then a 2x2 max-pool when s = 4.
        mean, std: per-channel normalisation of [0, 255] pixels, in [0, 1] units.
    """
    from zoo.models.abn import cifar_block_type

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
        from zoo.models.abn import cifar_block_type

        _, n = cifar_block_type(depth)
        return f"stage3_block{n}_out", f"stage2_block{n}_out", ("preprocess", "stem_", "stage1_", "stage2_")
    return "perception_conv5", "feature_extractor", ("rgb_to_bgr", "preprocess", "feature_extractor")


def make_backbone(backbone, depth, input_shape, width=16, stem_stride=4, backbone_weights=None, sync_bn=False):
    """The :class:`SplitBackbone` named `backbone` (``"face"`` or ``"imagenet"``)."""
    zl.check_option("backbone", backbone, ("face", "imagenet"))
    if backbone == "face":
        if backbone_weights is not None:
            raise ValueError("backbone_weights is for the keras.applications (imagenet) backbones; the face ResNet "
                             "has no ImageNet weights: start from a zoo model with zoo.load instead")
        return face_resnet(depth, width, stem_stride, sync_bn=sync_bn)
    return imagenet_resnet(depth, input_shape, backbone_weights, sync_bn)
