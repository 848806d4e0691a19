"""Plain backbones without attention: the baselines the attention families are measured against.

``plain_faceresnet20`` is the 64x64-face ResNet of :mod:`zoo.models.backbones` with global
average pooling and one linear unit per attribute: the multi-label baseline that the multi-task
ABN and the multi-channel attention model are compared with (same backbone, same recipe).
It has no attention maps; post-hoc explainers use its declared Grad-CAM layer.

``plain_stride1_resnet18``, ``plain_stride1_vgg11`` (and their compact ``_w025``, ``_w0125``) are
the stride-free backbones of loss-based attention with global average pooling and a linear layer:
the baselines of the ``lba_*`` architectures (same backbone, same recipe).
"""

import keras
from keras import layers

from zoo.models import backbones
from zoo.models import layers as zl
from zoo.models.losses import logits_loss
from zoo.registry import FeatureInfo, register_model


def plain_resnet(backbone="face", depth=20, num_classes=40, input_shape=(64, 64, 3), width=16, stem_stride=4,
                 backbone_weights=None, sync_bn=False, name=None):
    """A backbone (``"face"`` ResNet or keras.applications ``"imagenet"`` ResNet, see
    :func:`zoo.models.backbones.make_backbone`) + global average pooling + a linear layer ``fc``.

    Outputs: ``logits`` (B, num_classes).
    """
    bb = backbones.make_backbone(backbone, depth, input_shape, width, stem_stride, backbone_weights, sync_bn)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = layers.GlobalAveragePooling2D(name="gap")(bb.last_stage(bb.features(bb.preprocess(inputs))))
    logits = layers.Dense(num_classes, name="fc")(x)
    default_name = f"plain_{backbones.variant_name(backbone, depth)}"
    return keras.Model(inputs, {"logits": zl.float32_output("logits")(logits)}, name=name or default_name)


def feature_info(config):
    last_stage, extractor_output, feature_layers = backbones.taps(config["backbone"], config["depth"])
    return FeatureInfo(gradcam_layer=last_stage, inner_layer=extractor_output, maps=(), heads=("fc",),
                       feature_layers=feature_layers)


for _backbone, _depth in backbones.SPLIT_VARIANTS:
    _defaults, _test_config = backbones.variant_defaults(_backbone, _depth)
    register_model(
        f"plain_{backbones.variant_name(_backbone, _depth)}",
        "plain",
        plain_resnet,
        logits_loss,
        feature_info,
        task="multilabel",
        description=f"plain {'64x64-face' if _backbone == 'face' else 'ImageNet'} ResNet-{_depth} (no attention; the "
                    "baseline of the attribute models)",
        test_config=_test_config,
        backbone=_backbone,
        depth=_depth,
        num_classes=40,
        **_defaults,
    )


def plain_trunk(backbone="stride1_resnet18", num_classes=10, input_shape=(32, 32, 3), width=1.0, stage_strides=None,
                mean=backbones.STRIDE1_MEAN, std=backbones.STRIDE1_STD, sync_bn=False, name=None):
    """A registered trunk backbone (e.g. ``stride1_resnet18``) + global average pooling + ``fc``;
    ``stage_strides`` None: the backbone's default for the input size. Outputs: ``logits``."""
    spec = backbones.get_trunk(backbone, "plain_trunk")
    options = backbones.trunk_options(spec, input_shape, stage_strides)
    inputs = keras.Input(tuple(input_shape), name="image")
    trunk = spec.trunk(zl.preprocessing(mean, std)(inputs), width=width, sync_bn=sync_bn, **options)
    logits = layers.Dense(num_classes, name="fc")(layers.GlobalAveragePooling2D(name="gap")(trunk.output))
    return keras.Model(inputs, {"logits": zl.float32_output("logits")(logits)}, name=name or f"plain_{backbone}")


def trunk_feature_info(config):
    last, inner, feature_layers = backbones.get_backbone(config["backbone"]).taps()
    return FeatureInfo(gradcam_layer=last, inner_layer=inner, maps=(), heads=("fc",),
                       feature_layers=("preprocess", *feature_layers))


for _backbone in ("stride1_resnet18", "stride1_vgg11"):
    for _suffix, _width in (("", 1.0), ("_w025", 0.25), ("_w0125", 0.125)):
        register_model(
            f"plain_{_backbone}{_suffix}", "plain", plain_trunk, logits_loss, trunk_feature_info,
            description=f"plain stride-free {_backbone.split('_')[1]}{f' at width {_width}' if _width != 1 else ''} "
                        "+ GAP + linear (the baseline of loss-based attention)",
            test_config={"width": 0.0625}, backbone=_backbone, num_classes=10, input_shape=(32, 32, 3), width=_width)
