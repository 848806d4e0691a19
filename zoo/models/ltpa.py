"""Learn To Pay Attention (Jetley et al., ICLR 2018): VGG-att for 32x32 inputs.

Following the official Torch code (``VGGNet/``): a VGG-16-BN trunk with the first two max-pools
removed gives local features at conv7 (32x32x256), conv10 (16x16x512) and conv13 (8x8x512); two
extra conv+pool layers and a dense layer give the global vector g (512-d, no ReLU). Each
attention level s computes compatibility scores ``c_i = <u, l_i + g>`` (``pc``, Eq. 2) or
``c_i = <l_i, g>`` (``dp``, Eq. 3), normalises them with a softmax over the spatial positions
(Eq. 1; or a sigmoid), and pools ``g_a = sum_i a_i l_i``. The classifier sees only the g_a
vectors: concatenated into one linear layer (``concat``) or one classifier per level with the
logits averaged (``indep``).

Outputs: ``logits``, and per level s (1 = finest): ``attention_s`` (the normalised map a,
(B, h, w, 1)) and ``attention_scores_s`` (the compatibility scores c before normalisation).

Choices and where they come from (all builder arguments):
- ``projection="global"`` (official): for the 256-channel level g is projected
  (BN-ReLU-Dropout-Dense(256)); ``"local"`` (SaoYan's PyTorch port): the local features are
  projected up with a 1x1 conv (256->512, no bias).
- ``placement="before"`` (official, SaoYan ``model1``): local features before the max-pools;
  ``"after"`` (SaoYan ``model2``): after them (16/8/4 resolution).
- ``normalization="sigmoid"``: ``g_a`` is the spatial *mean* of ``a * l`` (SaoYan's variant).
- ``indep`` averages the levels' logits (the paper averages predictions; unverified whether
  before or after the softmax).
- Dropout rates and the conv bias follow cifar.torch's VGG-BN-Dropout; BN epsilon 1e-3 as in the
  official code. ``width`` scales every channel count (compact variants for CPU training).
- The official Lua code hand-averages gradients between paths; here plain autodiff is used.
"""

import keras
from keras import layers, ops

from zoo.models import backbones
from zoo.models import layers as zl
from zoo.models.backbones import channels, dropout_layer
from zoo.models.losses import logits_loss
from zoo.registry import FeatureInfo, MapTap, register_model

LTPA_MEAN = (0.4914, 0.4822, 0.4465)
LTPA_STD = (0.2470, 0.2435, 0.2616)
BN_EPSILON = backbones.VGG_BN_EPSILON


@keras.saving.register_keras_serializable(package="attention_zoo")
class Compatibility(layers.Layer):
    """Compatibility scores between local features l (B, h, w, C) and a global vector g (B, C).

    ``"pc"``: ``c = <u, l + g> + b`` (a 1x1 conv on l + g, with bias as in the official code);
    ``"dp"``: ``c = <l, g>`` (no parameters). Returns (B, h, w, 1).
    """

    MODES = ("pc", "dp")

    def __init__(self, mode="pc", **kwargs):
        super().__init__(**kwargs)
        self.mode = zl.check_option("compatibility", mode, self.MODES)
        self.score = layers.Dense(1, kernel_initializer=zl.he_normal_fan_out(), name="u") if mode == "pc" else None

    def build(self, local_shape, global_vector_shape):
        if self.score is not None:
            self.score.build(tuple(local_shape))

    def call(self, local, global_vector):
        g = ops.expand_dims(ops.expand_dims(ops.cast(global_vector, local.dtype), 1), 1)
        if self.mode == "pc":
            return self.score(local + g)
        return ops.sum(local * g, axis=-1, keepdims=True)

    def compute_output_shape(self, local_shape, global_vector_shape):
        return tuple(local_shape)[:-1] + (1,)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="attention_zoo")
class AttentionPooling(layers.Layer):
    """Normalise scores c (B, h, w, 1) into a map a and pool the local features with it.

    ``"softmax"``: a = softmax of c over the h*w positions, ``g_a = sum_i a_i l_i`` (Eq. 1, 4);
    ``"sigmoid"``: a = sigmoid(c), ``g_a = mean_i a_i l_i``. Returns ``(a, g_a)``.
    """

    MODES = ("softmax", "sigmoid")

    def __init__(self, normalization="softmax", **kwargs):
        super().__init__(**kwargs)
        self.normalization = zl.check_option("normalization", normalization, self.MODES)

    def call(self, local, scores):
        shape = ops.shape(scores)
        flat = ops.reshape(ops.cast(scores, "float32"), (shape[0], -1))
        if self.normalization == "softmax":
            weights = ops.reshape(ops.softmax(flat, axis=-1), shape)
            pooled = ops.sum(ops.cast(weights, local.dtype) * local, axis=(1, 2))
        else:
            weights = ops.reshape(ops.sigmoid(flat), shape)
            pooled = ops.mean(ops.cast(weights, local.dtype) * local, axis=(1, 2))
        return ops.cast(weights, self.compute_dtype), pooled

    def compute_output_shape(self, local_shape, scores_shape):
        return tuple(scores_shape), (local_shape[0], local_shape[-1])

    def get_config(self):
        return {**super().get_config(), "normalization": self.normalization}


def conv_bn_relu(x, filters, dropout, name, sync_bn):
    """cifar.torch ConvBNReLU: 3x3 conv with bias -> BN -> ReLU (-> Dropout)."""
    return dropout_layer(backbones.vgg_conv_bn_relu(x, filters, name, sync_bn), dropout, f"{name}_drop")


def bn_relu_dropout(x, name, sync_bn, rate=0.5):
    x = zl.batch_norm(f"{name}_bn", sync_bn, epsilon=BN_EPSILON)(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return dropout_layer(x, rate, f"{name}_drop")


def ltpa_vgg(
    levels=3,
    num_classes=10,
    input_shape=(32, 32, 3),
    compatibility="pc",
    normalization="softmax",
    aggregation="concat",
    placement="before",
    projection="global",
    width=1.0,
    dropout_scale=1.0,
    mean=LTPA_MEAN,
    std=LTPA_STD,
    sync_bn=False,
    name=None,
):
    """(VGG-att`levels`)-`aggregation`-`compatibility` of the paper, for 32x32 inputs.

    `levels` 3 uses conv7/conv10/conv13, 2 uses conv10/conv13, 1 uses conv13 (official code).
    `dropout_scale` multiplies every dropout rate (1 = cifar.torch's rates; the compact CPU
    weights use 0.5, a choice of ours for short schedules on narrow nets).
    """
    zl.check_option("levels", levels, (1, 2, 3))
    zl.check_option("aggregation", aggregation, ("concat", "indep"))
    zl.check_option("placement", placement, ("before", "after"))
    zl.check_option("projection", projection, ("global", "local"))
    inputs = keras.Input(tuple(input_shape), name="image")
    x = zl.preprocessing(mean, std)(inputs)
    trunk = backbones.get_trunk("cifar_vgg16", "ltpa_vgg").trunk(x, width=width, dropout_scale=dropout_scale,
                                                                 removed_pools=(1, 2), sync_bn=sync_bn)
    local_features, x = [trunk.endpoints[layer] for layer in LOCAL_LAYERS[placement]], trunk.output
    c512 = channels(512, width)
    # global branch: two extra conv+pool layers and a dense layer (no ReLU) -> g
    x = conv_bn_relu(x, c512, 0.4 * dropout_scale, "conv14", sync_bn)
    x = layers.MaxPooling2D(2, name="pool6")(x)
    x = conv_bn_relu(x, c512, 0.4 * dropout_scale, "conv15", sync_bn)
    x = layers.GlobalMaxPooling2D(name="pool7")(x)  # the official 2x2 max-pool of a 2x2 map
    x = dropout_layer(x, 0.5 * dropout_scale, "global_drop")
    g = layers.Dense(c512, name="global_fc")(x)

    outputs, pooled = {}, []
    for level, local in zip(range(4 - levels, 4), local_features[3 - levels:]):
        index = levels - (3 - level)  # 1 = the finest level used
        g_level = g
        if local.shape[-1] != c512:
            if projection == "global":
                g_level = bn_relu_dropout(g, f"att{index}_proj", sync_bn, 0.5 * dropout_scale)
                g_level = layers.Dense(local.shape[-1], name=f"att{index}_proj_fc")(g_level)
            else:
                local = zl.conv(c512, 1, name=f"att{index}_proj_conv")(local)
        scores = Compatibility(compatibility, name=f"att{index}_compat")(local, g_level)
        weights, g_a = AttentionPooling(normalization, name=f"att{index}_pool")(local, scores)
        outputs[f"attention_{index}"] = zl.float32_output(f"attention_{index}")(weights)
        outputs[f"attention_scores_{index}"] = zl.float32_output(f"attention_scores_{index}")(scores)
        pooled.append(bn_relu_dropout(g_a, f"att{index}_out", sync_bn, 0.5 * dropout_scale))
    if aggregation == "concat":
        features = pooled[0] if len(pooled) == 1 else layers.Concatenate(name="concat")(pooled)
        logits = layers.Dense(num_classes, name="fc")(features)
    else:
        per_level = [layers.Dense(num_classes, name=f"fc{i + 1}")(p) for i, p in enumerate(pooled)]
        logits = per_level[0] if len(per_level) == 1 else layers.Average(name="fc_average")(per_level)
    outputs["logits"] = zl.float32_output("logits")(logits)
    return keras.Model(inputs, outputs, name=name or f"ltpa_vgg_att{levels}")


def vgg_cifar(num_classes=10, input_shape=(32, 32, 3), width=1.0, dropout_scale=1.0, mean=LTPA_MEAN, std=LTPA_STD,
              sync_bn=False, name=None):
    """The plain VGG-16-BN-Dropout baseline of cifar.torch (no attention), same `width` and
    `dropout_scale` knobs as :func:`ltpa_vgg`.

    Classifier: Dropout(.5) -> Dense(512) -> BN -> ReLU -> Dropout(.5) -> Dense(K).
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = zl.preprocessing(mean, std)(inputs)
    x = backbones.get_trunk("cifar_vgg16", "vgg_cifar").trunk(x, width=width, dropout_scale=dropout_scale,
                                                              sync_bn=sync_bn).output
    x = layers.GlobalAveragePooling2D(name="flatten")(x)  # 1x1 at 32x32 input
    x = dropout_layer(x, 0.5 * dropout_scale, "cls_input_drop")
    x = layers.Dense(channels(512, width), name="cls_fc")(x)
    x = bn_relu_dropout(x, "cls", sync_bn, 0.5 * dropout_scale)
    logits = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, {"logits": zl.float32_output("logits")(logits)}, name=name or "vgg16_cifar")


# the VGG trunk (conv1..conv13, its pools) and the global branch's conv14, conv15
LTPA_FEATURES = ("preprocess", *backbones.cifar_vgg16_taps()[2])
LOCAL_LAYERS = {"before": ("conv7_relu", "conv10_relu", "conv13_relu"), "after": ("pool3", "pool4", "pool5")}
MAP_KIND = {"softmax": "softmax_space", "sigmoid": "sigmoid"}


def ltpa_feature_info(config):
    """Taps of :func:`ltpa_vgg`: Grad-CAM on the coarsest local features (conv13), the maps a_s
    (finest level first) and the raw scores c_s; heads are the classifier(s)."""
    levels = config["levels"]
    local_layers = LOCAL_LAYERS[config.get("placement", "before")]
    kind = MAP_KIND[config.get("normalization", "softmax")]
    maps = tuple(MapTap(f"attention_{i}", kind, f"level {i} attention a (Eq. 1)") for i in range(1, levels + 1))
    maps += tuple(MapTap(f"attention_scores_{i}", "scores", f"level {i} compatibility scores c (Eq. 2/3)")
                  for i in range(1, levels + 1))
    concat = config.get("aggregation", "concat") == "concat"
    heads = ("fc",) if concat else tuple(f"fc{i}" for i in range(1, levels + 1))
    return FeatureInfo(gradcam_layer=local_layers[2], inner_layer=local_layers[1], maps=maps, heads=heads,
                       feature_layers=LTPA_FEATURES)


def vgg_feature_info(config):
    """Taps of :func:`vgg_cifar` (no attention maps)."""
    last, inner, _ = backbones.cifar_vgg16_taps()
    return FeatureInfo(gradcam_layer=last, inner_layer=inner, maps=(), heads=("fc",), feature_layers=LTPA_FEATURES)


COMPACT = {"width": 0.25, "dropout_scale": 0.5}  # the CPU-sized variants (tags *_w025)

for _levels in (1, 2, 3):
    for _suffix, _extra in (("", {}), ("_w025", COMPACT)):
        register_model(
            f"ltpa_vgg_att{_levels}{_suffix}",
            "ltpa",
            ltpa_vgg,
            logits_loss,
            ltpa_feature_info,
            description=f"Learn To Pay Attention, VGG-att{_levels} (32x32 inputs)"
            + (", width 0.25, dropout x0.5" if _extra else ""),
            test_config={"width": 0.125},
            levels=_levels,
            num_classes=10,
            input_shape=(32, 32, 3),
            **_extra,
        )
for _suffix, _extra in (("", {}), ("_w025", COMPACT)):
    register_model(
        f"ltpa_vgg16{_suffix}",
        "ltpa",
        vgg_cifar,
        logits_loss,
        vgg_feature_info,
        description="VGG-16-BN-Dropout baseline without attention (the LTPA paper's VGG)"
        + (", width 0.25, dropout x0.5" if _extra else ""),
        test_config={"width": 0.125},
        num_classes=10,
        input_shape=(32, 32, 3),
        **_extra,
    )
