"""Plain backbones without attention: the baselines the attention families are measured against.

``plain_faceresnet20`` is the 64x64-face ResNet of :mod:`zoo.models.backbones` with global
average pooling and one linear unit per attribute: the multi-label baseline that the multi-task
ABN and the multi-channel attention model are compared with (same backbone, same recipe).
It has no attention maps; post-hoc explainers use its declared Grad-CAM layer.
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
    default_name = f"plain_{'face' if backbone == 'face' else ''}resnet{depth}"
    return keras.Model(inputs, {"logits": zl.float32_output("logits")(logits)}, name=name or default_name)


def feature_info(config):
    last_stage, extractor_output, feature_layers = backbones.taps(config["backbone"], config["depth"])
    return FeatureInfo(gradcam_layer=last_stage, inner_layer=extractor_output, maps=(), heads=("fc",),
                       feature_layers=feature_layers)


for _backbone, _depth in (("face", 20), ("imagenet", 50), ("imagenet", 101)):
    register_model(
        f"plain_{'face' if _backbone == 'face' else ''}resnet{_depth}",
        "plain",
        plain_resnet,
        logits_loss,
        feature_info,
        task="multilabel",
        description=f"plain {'64x64-face' if _backbone == 'face' else 'ImageNet'} ResNet-{_depth} (no attention; the "
                    "baseline of the attribute models)",
        backbone=_backbone,
        depth=_depth,
        num_classes=40,
        input_shape=(64, 64, 3) if _backbone == "face" else (224, 224, 3),
        **({"width": backbones.FACE_WIDTHS} if _backbone == "face" else {}),
    )
