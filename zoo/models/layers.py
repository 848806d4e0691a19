"""Building blocks shared by the model families (backend-agnostic: keras.layers / keras.ops only).

Conventions
- Every model takes raw pixel values in [0, 255] (float or uint8 cast to float) and normalises
  inside the graph with :func:`preprocessing`, so predict/export need no separate transform.
- Batch-norm uses PyTorch's epsilon (1e-5) and momentum 0.9 to match the official code bases.
- Convolutions use He-normal (fan-out) initialisation, as in the official ABN code.
"""

import keras
from keras import layers, ops

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def check_option(name, value, allowed):
    """Raise a ValueError naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def he_normal_fan_out():
    """`N(0, sqrt(2 / (k*k*out_channels)))`, the init of the official ABN/ResNet code."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def conv(filters, kernel_size, strides=1, name=None, use_bias=False):
    """'same'-padded convolution with the zoo's default initialisation."""
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=he_normal_fan_out(),
        name=name,
    )


def batch_norm(name=None, synchronized=False, epsilon=BN_EPSILON):
    """BatchNorm with PyTorch's epsilon/momentum; `synchronized` syncs statistics across replicas."""
    return layers.BatchNormalization(epsilon=epsilon, momentum=BN_MOMENTUM, synchronized=synchronized, name=name)


def conv_bn(x, filters, kernel_size, strides=1, name="", relu=True, sync_bn=False):
    """conv -> BN (-> ReLU)."""
    x = conv(filters, kernel_size, strides, name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn", sync_bn)(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def basic_block(x, planes, strides=1, name="", sync_bn=False):
    """CIFAR ResNet basic block (two 3x3 convs), projection shortcut when the shape changes."""
    in_channels = x.shape[-1]
    out = conv_bn(x, planes, 3, strides, name=f"{name}_1", sync_bn=sync_bn)
    out = conv_bn(out, planes, 3, 1, name=f"{name}_2", relu=False, sync_bn=sync_bn)
    if strides != 1 or in_channels != planes:
        x = conv_bn(x, planes, 1, strides, name=f"{name}_down", relu=False, sync_bn=sync_bn)
    out = layers.Add(name=f"{name}_add")([x, out])
    return layers.ReLU(name=f"{name}_out")(out)


def bottleneck_block(x, planes, strides=1, name="", sync_bn=False, expansion=4):
    """ResNet bottleneck (1x1 -> 3x3 (strided) -> 1x1 x expansion), projection shortcut."""
    in_channels = x.shape[-1]
    out = conv_bn(x, planes, 1, 1, name=f"{name}_1", sync_bn=sync_bn)
    out = conv_bn(out, planes, 3, strides, name=f"{name}_2", sync_bn=sync_bn)
    out = conv_bn(out, planes * expansion, 1, 1, name=f"{name}_3", relu=False, sync_bn=sync_bn)
    if strides != 1 or in_channels != planes * expansion:
        x = conv_bn(x, planes * expansion, 1, strides, name=f"{name}_down", relu=False, sync_bn=sync_bn)
    out = layers.Add(name=f"{name}_add")([x, out])
    return layers.ReLU(name=f"{name}_out")(out)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def resnet_stage(x, block, planes, num_blocks, strides, name, sync_bn=False):
    """A stage of `num_blocks` residual blocks; only the first one is strided."""
    block_fn = BLOCKS[block]
    for i in range(num_blocks):
        x = block_fn(x, planes, strides if i == 0 else 1, name=f"{name}_block{i + 1}", sync_bn=sync_bn)
    return x


def preprocessing(mean, std, name="preprocess"):
    """Normalise raw [0, 255] pixels with per-channel `mean`/`std` given in [0, 1] units."""
    return layers.Normalization(
        mean=[m * 255.0 for m in mean],
        variance=[(s * 255.0) ** 2 for s in std],
        name=name,
    )


def float32_output(name):
    """Identity that casts to float32, so outputs stay float32 under mixed precision."""
    return layers.Activation("linear", dtype="float32", name=name)


@keras.saving.register_keras_serializable(package="attention_zoo")
class AttentionGate(layers.Layer):
    """Apply a spatial attention map ``M`` (B, H, W, 1) to features ``g`` (B, H, W, C).

    Modes (ABN paper, Eq. 2 and Eq. 3):
    - ``"residual"``: ``g' = (1 + M) * g`` (Eq. 3, what the official code always uses);
    - ``"multiply"``: ``g' = M * g`` (Eq. 2);
    - ``"none"``: ``g' = g`` (the map is computed but not applied: the no-attention baseline).
    """

    MODES = ("none", "multiply", "residual")

    def __init__(self, mode="residual", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_option("attention mode", mode, self.MODES)

    def call(self, features, attention):
        attention = ops.cast(attention, features.dtype)
        if self.mode == "residual":
            return features * (1.0 + attention)
        if self.mode == "multiply":
            return features * attention
        return features

    def compute_output_shape(self, features_shape, attention_shape):
        return tuple(features_shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
