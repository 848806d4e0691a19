"""Attention Branch Network (Fukui et al., CVPR 2019), following the official PyTorch code.

A backbone is split into a *feature extractor* (all stages but the last), an *attention branch*
(a copy of the last stage at stride 1, then BN -> 1x1 conv to K -> BN -> ReLU, with two heads:
1x1 conv + global average pooling for the attention-branch logits, and 3x3 conv + BN + sigmoid
for the map M) and a *perception branch* (the last stage, strided, + GAP + FC) that runs on the
attended features ``g' = (1 + M) * g`` (Eq. 3).

Outputs (dict): ``logits`` (perception branch, the prediction), ``attention_logits`` (attention
branch) and ``attention`` (M, shape (B, h, w, 1), at the feature-extractor resolution).
Loss: ``L = L_per + L_att``, both softmax cross-entropy (:func:`abn_loss`).

Choices where the paper and code differ (configurable):
- ``map_kernel_size=3``: the official code (and the CVPR numbers, per the authors in issue #10)
  use a 3x3 conv for the map; the paper's figure says 1x1.
- Global average pooling instead of the code's fixed ``AvgPool2d(16)``/``(8)``, so any input
  size works (numerically identical at 32x32 / 224x224).
"""

import keras
from keras import layers

from zoo.models import backbones
from zoo.models import layers as zl
from zoo.models.backbones import ReverseChannels  # noqa: F401  (its registered name, for saved models)
from zoo.registry import FeatureInfo, MapTap, register_model

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = backbones.IMAGENET_DEPTHS


def attention_branch(features, block_fn, num_classes, map_kernel_size=3, sync_bn=False):
    """ABN attention branch on the stride-1 copy of the last stage (`block_fn(features)`).

    Returns ``(attention_logits, attention_map)``; the map is ``sigmoid(BN(conv_k(.)))``.
    """
    x = block_fn(features)
    x = zl.batch_norm("att_bn", sync_bn)(x)
    x = zl.conv(num_classes, 1, name="att_conv")(x)
    x = zl.batch_norm("att_bn2", sync_bn)(x)
    x = layers.ReLU(name="att_relu")(x)
    logits = zl.conv(num_classes, 1, name="att_conv2")(x)
    logits = layers.GlobalAveragePooling2D(name="att_gap")(logits)
    m = zl.conv(1, map_kernel_size, name="att_conv3")(x)
    m = zl.batch_norm("att_bn3", sync_bn)(m)
    m = layers.Activation("sigmoid", name="att_sigmoid")(m)
    return logits, m


def outputs_dict(logits, attention_logits, attention):
    """The ABN output dict, cast to float32 (mixed-precision safe)."""
    return {
        "logits": zl.float32_output("logits")(logits),
        "attention_logits": zl.float32_output("attention_logits")(attention_logits),
        "attention": zl.float32_output("attention")(attention),
    }


def abn_cifar_resnet(
    depth=20,
    num_classes=10,
    input_shape=(32, 32, 3),
    block="auto",
    attention_mode="residual",
    map_kernel_size=3,
    width=16,
    mean=zl.CIFAR_MEAN,
    std=zl.CIFAR_STD,
    sync_bn=False,
    name=None,
):
    """ABN on a CIFAR ResNet (official `models/cifar/resnet.py`; the registered ``cifar_resnet``
    backbone): stages of width 16/32/64 (``width``: the first stage's channels).

    The feature extractor is conv1 + stages 1-2 (16x16 maps for 32x32 input); the attention
    branch is stage 3 at stride 1; the perception branch is stage 3 at stride 2.
    """
    bb = backbones.make_backbone("cifar_resnet", depth, input_shape, width, 1, None, sync_bn, block=block, mean=mean,
                                 std=std)
    inputs = keras.Input(tuple(input_shape), name="image")
    features = bb.features(bb.preprocess(inputs))

    def stride1_last_stage(f):
        return bb.last_stage(f, strides=1, prefix="att_")

    att_logits, att_map = attention_branch(features, stride1_last_stage, num_classes, map_kernel_size, sync_bn)
    x = zl.AttentionGate(attention_mode, name="attention_gate")(features, att_map)
    x = layers.GlobalAveragePooling2D(name="gap")(bb.last_stage(x))
    logits = layers.Dense(num_classes, name="fc")(x)
    outputs = outputs_dict(logits, att_logits, att_map)
    return keras.Model(inputs, outputs, name=name or f"abn_resnet{depth}")


def abn_imagenet_resnet(
    depth=50,
    num_classes=1000,
    input_shape=(224, 224, 3),
    attention_mode="residual",
    map_kernel_size=3,
    backbone_weights=None,
    sync_bn=False,
    name=None,
):
    """ABN on a `keras.applications` ResNet-50/101/152 (official `models/imagenet/resnet.py`).

    Feature extractor: the backbone through conv4 (14x14x1024 at 224x224); attention branch:
    3 bottlenecks of width 512 (2048 out) at stride 1; perception branch: the backbone's conv5.
    `backbone_weights` is passed to keras.applications (``"imagenet"`` downloads, or a local
    ``*_notop.h5`` path) so training can start from ImageNet features. Inputs are RGB pixels in
    [0, 255]; the Caffe preprocessing of keras.applications happens inside the model.
    """
    backbone = backbones.imagenet_resnet(depth, input_shape, backbone_weights, sync_bn)
    inputs = keras.Input(tuple(input_shape), name="image")
    features = backbone.features(backbone.preprocess(inputs))

    def stride1_conv5(f):
        return backbone.last_stage(f, strides=1, prefix="att_")

    att_logits, att_map = attention_branch(features, stride1_conv5, num_classes, map_kernel_size, sync_bn)
    x = zl.AttentionGate(attention_mode, name="attention_gate")(features, att_map)
    x = backbone.last_stage(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    logits = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs_dict(logits, att_logits, att_map), name=name or f"abn_resnet{depth}")


def abn_multitask(
    backbone="face",
    depth=20,
    num_classes=40,
    input_shape=(64, 64, 3),
    width=16,
    stem_stride=4,
    attention_mode="residual",
    map_activation="sigmoid",
    attention_pooling="max",
    backbone_weights=None,
    sync_bn=False,
    name=None,
):
    """Multi-task ABN for attributes (Fukui et al., CVPR 2019, Sec. 4.4; seed notes Sec. 1.4).

    Feature extractor -> ``h``; attention branch: a stride-1 copy of the last stage, then a 1x1
    conv (no bias) to one raw map per attribute, whose global pooling gives the attention-branch
    logits; perception branch: the shared last stage run on ``h * M_i`` for every attribute i, as
    one batch of B * A gated copies (:class:`zoo.models.layers.PerAttributeGate`), then GAP and a
    head of its own per attribute (one logit each, binary cross-entropy; the Chainer code's
    2-way softmax per attribute is the same model). Loss: :func:`abn_loss` (att BCE + per BCE).

    Args:
        backbone: ``"face"`` (:func:`zoo.models.backbones.face_resnet`, for 64x64 faces) or
            ``"imagenet"`` (keras.applications ResNet-`depth`, optional `backbone_weights`).
        attention_mode: ``"residual"`` ``h * (1 + M_i)`` (default: ABN's Eq. 3, as our single-task
            ABN and the PyTorch port's option), ``"multiply"`` ``h * M_i`` (the Chainer multi-task
            code) or ``"none"``. With sigmoid maps, ``"multiply"`` hides the features from the
            perception head wherever the attention branch thinks the attribute absent, so the
            head cannot overrule it; the residual gate only emphasises.
        map_activation: ``"sigmoid"`` gates with ``M_i = sigmoid(map_i)`` (our default: a bounded
            gate that reads as the probability of the attribute at each position) or ``"none"``
            with the raw maps, as the Chainer code (which has no sigmoid; unverified which the
            paper's numbers used). The attention-branch logits always pool the raw maps.
        attention_pooling: ``"max"`` (Chainer) or ``"avg"`` (the later PyTorch port).

    Outputs: ``logits`` (B, A) of the perception branch, ``attention_logits`` (B, A) and
    ``attention`` (B, h, w, A): the gate maps, one per attribute, at the extractor's resolution.
    """
    zl.check_option("map_activation", map_activation, ("sigmoid", "none"))
    zl.check_option("attention_pooling", attention_pooling, ("max", "avg"))
    bb = backbones.make_backbone(backbone, depth, input_shape, width, stem_stride, backbone_weights, sync_bn)
    inputs = keras.Input(tuple(input_shape), name="image")
    h = bb.features(bb.preprocess(inputs))
    raw_maps = zl.conv(num_classes, 1, name="att_conv")(bb.last_stage(h, strides=1, prefix="att_"))
    pooling = layers.GlobalMaxPooling2D if attention_pooling == "max" else layers.GlobalAveragePooling2D
    att_logits = pooling(name="att_pool")(raw_maps)
    maps = layers.Activation("sigmoid", name="att_sigmoid")(raw_maps) if map_activation == "sigmoid" else raw_maps
    x = zl.PerAttributeGate(attention_mode, name="attention_gate")(h, maps)  # (B * A, h, w, C)
    x = layers.GlobalAveragePooling2D(name="gap")(bb.last_stage(x))
    x = zl.AttributesFromBatch(num_classes, name="per_attribute")(x)  # (B, A, C')
    logits = zl.PerAttributeDense(name="fc")(x)
    default_name = f"abn_multitask_{'face' if backbone == 'face' else ''}resnet{depth}"
    return keras.Model(inputs, outputs_dict(logits, att_logits, maps), name=name or default_name)


def abn_loss(y_true, outputs, task, attention_loss_weight=1.0, label_smoothing=0.0):
    """Per-example ABN loss ``L_per + w * L_att`` (paper Sec. 3.3; the code uses w = 1), each term
    the task's loss (softmax cross-entropy, or binary cross-entropy for multi-label)."""
    return task.loss(y_true, outputs["logits"], label_smoothing) + attention_loss_weight * (
        task.loss(y_true, outputs["attention_logits"], label_smoothing)
    )


ABN_MAPS = (MapTap("attention", "sigmoid", "the attention map M of Eq. 3, at the feature-extractor resolution"),)
ABN_HEADS = ("att_conv", "att_bn2", "att_conv2", "att_conv3", "fc")  # their shapes depend on K


def cifar_feature_info(config):
    """Taps of :func:`abn_cifar_resnet`: Grad-CAM on the perception branch's last block."""
    last, inner, feature_layers = backbones.cifar_resnet_taps(config["depth"], config.get("block", "auto"))
    return FeatureInfo(gradcam_layer=last, inner_layer=inner, maps=ABN_MAPS, heads=ABN_HEADS,
                       feature_layers=feature_layers)


def imagenet_feature_info(config):
    """Taps of :func:`abn_imagenet_resnet` (conv5 is the nested ``perception_conv5`` model)."""
    last, inner, feature_layers = backbones.imagenet_taps(config["depth"])
    return FeatureInfo(gradcam_layer=last, inner_layer=inner, maps=ABN_MAPS, heads=ABN_HEADS,
                       feature_layers=feature_layers)


def multitask_maps(config):
    """One gate map M_i per attribute; in [0, 1] with the (default) sigmoid gate."""
    return (MapTap("attention", "per_attribute", "one gate map M_i per attribute (last axis), at the "
                   "feature-extractor resolution", unit_range=config.get("map_activation", "sigmoid") == "sigmoid"),)


def multitask_feature_info(config):
    """Taps of :func:`abn_multitask`. Grad-CAM targets the feature extractor's output ``h``: the
    shared last stage runs on B * A gated copies, so its output is not one map per image."""
    _, extractor_output, feature_layers = backbones.taps(config["backbone"], config["depth"])
    return FeatureInfo(gradcam_layer=extractor_output, inner_layer=None, maps=multitask_maps(config),
                       heads=("att_conv", "fc"), feature_layers=feature_layers)


for _depth in CIFAR_DEPTHS:
    register_model(
        f"abn_resnet{_depth}",
        "abn",
        abn_cifar_resnet,
        abn_loss,
        cifar_feature_info,
        description=f"ABN on CIFAR ResNet-{_depth} (32x32 inputs)",
        test_config={"width": 4} if _depth <= 44 else None,  # 56, 110: the blocks of 44 (bottleneck), deeper
        depth=_depth,
        num_classes=10,
        input_shape=(32, 32, 3),
    )
for _depth in IMAGENET_DEPTHS:
    register_model(
        f"abn_resnet{_depth}",
        "abn",
        abn_imagenet_resnet,
        abn_loss,
        imagenet_feature_info,
        description=f"ABN on ImageNet ResNet-{_depth} (keras.applications backbone)",
        test_config={"input_shape": (64, 64, 3)} if _depth == 50 else None,  # 101, 152: ResNet-50's code, deeper
        depth=_depth,
        num_classes=1000,
        input_shape=(224, 224, 3),
    )
for _backbone, _depth in backbones.SPLIT_VARIANTS:
    _defaults, _test_config = backbones.variant_defaults(_backbone, _depth)
    register_model(
        f"abn_multitask_{backbones.variant_name(_backbone, _depth)}",
        "abn",
        abn_multitask,
        abn_loss,
        multitask_feature_info,
        task="multilabel",
        description=f"multi-task ABN for attributes on {'a 64x64-face' if _backbone == 'face' else 'an ImageNet'} "
                    f"ResNet-{_depth}",
        test_config=_test_config,
        backbone=_backbone,
        depth=_depth,
        num_classes=40,
        **_defaults,
    )
