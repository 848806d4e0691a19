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


@keras.saving.register_keras_serializable(package="attention_zoo")
class Subsample(layers.Layer):
    """Every `step`-th pixel, from the first: ``x[:, ::step, ::step, :]``. Followed by a stride-1
    1x1 convolution it gives the same numbers as the strided 1x1 convolution (which only samples
    pixels ``0, step, 2 step, ...``, with "same" or "valid" padding) with the same weights.

    Why: on CPUs with AVX512-BF16, TensorFlow 2.21's oneDNN ``Conv2DBackpropFilter`` of a 1x1
    stride-2 convolution corrupts the heap (segfault or abort) for few channels (<= 8 in, <= 16
    out) at even sizes from 56 to 94 px, e.g. the projection shortcut of the width-8 ABN ResNet-20
    at 60x60; TensorFlow runs that op even for input gradients (SmoothGrad, Integrated Gradients,
    FGSM). Split this way the op never runs. ``scripts/repro_onednn_conv_crash.py`` reproduces the
    crash with TensorFlow alone. On TensorFlow the slice's gradient is spread with a pad instead of
    StridedSliceGrad (:func:`zoo.kernels.subsample`: the same numbers, 1.7-4x faster).
    """

    def __init__(self, step=2, **kwargs):
        super().__init__(**kwargs)
        self.step = int(step)

    def call(self, x):
        from zoo.kernels import subsample

        fast = subsample(x, self.step)  # TensorFlow: the same slice with a faster gradient
        return x[:, :: self.step, :: self.step, :] if fast is None else fast

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, None if height is None else -(-height // self.step),
                None if width is None else -(-width // self.step), channels)

    def get_config(self):
        return {**super().get_config(), "step": self.step}


def conv(filters, kernel_size, strides=1, name=None, use_bias=False, padding="same"):
    """A convolution ('same'-padded by default) with the zoo's default initialisation."""
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=he_normal_fan_out(),
        name=name,
    )


@keras.saving.register_keras_serializable(package="attention_zoo")
class BatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization (same variables, statistics, updates and results) that runs the
    backend's fused kernel where one applies (:func:`zoo.kernels.fused_batch_norm`: TensorFlow,
    4-D channels-last input, not synchronized across replicas, no mask), else the Keras form.

    Why: Keras casts bfloat16 inputs to float32 and normalises with separate ops; the fused
    kernel trains a conv-BN-ReLU stack about 2x faster under ``mixed_bfloat16`` and 1.2x in
    float32 on a CPU with AVX512_BF16 / AMX. Its parameters are read in float32 (no autocast).
    It keeps Keras' class name: weight files key layers by it (``layers/batch_normalization_7``),
    so every saved weight file loads into it unchanged.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None):
        from zoo.kernels import fused_batch_norm

        fusable = (mask is None and not self.synchronized and not self.renorm and self.center and self.scale
                   and len(inputs.shape) == 4 and self.axis in (3, -1))
        fast = fusable and fused_batch_norm(inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                            self.epsilon, bool(training and self.trainable))
        if not fast:
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = fast
        if mean is not None:
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)


def batch_norm(name=None, synchronized=False, epsilon=BN_EPSILON):
    """BatchNorm (:class:`BatchNormalization`) with PyTorch's epsilon/momentum; `synchronized`
    syncs statistics across replicas."""
    return BatchNormalization(epsilon=epsilon, momentum=BN_MOMENTUM, synchronized=synchronized, name=name)


def conv_bn(x, filters, kernel_size, strides=1, name="", relu=True, sync_bn=False, padding="same", use_bias=False):
    """conv -> BN (-> ReLU)."""
    if kernel_size == 1 and strides != 1:  # a strided 1x1 conv as subsampling + 1x1 conv (see Subsample)
        x, strides = Subsample(strides, name=f"{name}_subsample")(x), 1
    x = conv(filters, kernel_size, strides, name=f"{name}_conv", use_bias=use_bias, padding=padding)(x)
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


@keras.saving.register_keras_serializable(package="attention_zoo")
class PerAttributeGate(layers.Layer):
    """The multi-task ABN perception input: features ``h`` (B, H, W, C) gated by each attribute's
    map ``M_i`` (B, H, W, A), as one batch (B * A, H, W, C) ordered image-major (image b's
    attributes are rows ``b * A .. b * A + A - 1``).

    Modes as :class:`AttentionGate`: ``"multiply"`` ``h * M_i`` (the Chainer multi-task code),
    ``"residual"`` ``h * (1 + M_i)`` (the PyTorch port's option), ``"none"`` ``h``.
    """

    def __init__(self, mode="multiply", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_option("attention mode", mode, AttentionGate.MODES)

    def call(self, features, maps):
        maps = ops.cast(maps, features.dtype)
        if self.mode == "residual":
            maps = 1.0 + maps
        elif self.mode == "none":
            maps = ops.ones_like(maps)
        gated = ops.expand_dims(features, 3) * ops.expand_dims(maps, -1)  # (B, H, W, A, C)
        gated = ops.transpose(gated, (0, 3, 1, 2, 4))  # (B, A, H, W, C)
        _, height, width, channels = ops.shape(features)
        return ops.reshape(gated, (-1, height, width, channels))

    def compute_output_shape(self, features_shape, maps_shape):
        batch = None if features_shape[0] is None else features_shape[0] * maps_shape[-1]
        return (batch, *features_shape[1:])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="attention_zoo")
class PerAttributeDense(layers.Layer):
    """One linear unit per attribute on that attribute's own vector: (B, A, D) -> (B, A),
    ``y[b, a] = x[b, a] . w[a] + c[a]`` (the per-attribute heads of multi-task ABN and of the
    multi-channel attention model, as one einsum instead of A Dense layers)."""

    def build(self, input_shape):
        _, attributes, dim = input_shape
        self.kernel = self.add_weight(shape=(attributes, dim), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(attributes,), initializer="zeros", name="bias")

    def call(self, x):
        return ops.einsum("bad,ad->ba", x, ops.cast(self.kernel, x.dtype)) + ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])


@keras.saving.register_keras_serializable(package="attention_zoo")
class GroupedPointwise(layers.Layer):
    """A 1x1 convolution per group: (B, H, W, G * Din) -> (B, H, W, G * Dout), group g's outputs
    computed from group g's inputs only (G independent sub-networks run as one einsum)."""

    def __init__(self, groups, filters_per_group, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.filters_per_group = int(filters_per_group)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if input_shape[-1] % self.groups:
            raise ValueError(f"{input_shape[-1]} input channels do not split into {self.groups} groups")
        self.din = input_shape[-1] // self.groups
        fan_in_init = keras.initializers.VarianceScaling(2.0, mode="fan_in", distribution="untruncated_normal")
        self.kernel = self.add_weight(shape=(self.groups, self.din, self.filters_per_group), initializer=fan_in_init,
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.groups * self.filters_per_group,),
                                    initializer=self.bias_initializer, name="bias")

    def call(self, x):
        _, h, w, _ = ops.shape(x)
        grouped = ops.reshape(x, (-1, h, w, self.groups, self.din))
        out = ops.einsum("bhwgi,gio->bhwgo", grouped, ops.cast(self.kernel, x.dtype))
        return ops.reshape(out, (-1, h, w, self.groups * self.filters_per_group)) + ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.groups * self.filters_per_group)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "filters_per_group": self.filters_per_group,
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}


@keras.saving.register_keras_serializable(package="attention_zoo")
class AttributesFromBatch(layers.Layer):
    """The inverse of :class:`PerAttributeGate`'s batching for vectors: (B * A, D) -> (B, A, D)."""

    def __init__(self, num_attributes, **kwargs):
        super().__init__(**kwargs)
        self.num_attributes = int(num_attributes)

    def call(self, x):
        return ops.reshape(x, (-1, self.num_attributes, x.shape[-1]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.num_attributes
        return (batch, self.num_attributes, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_attributes": self.num_attributes}
