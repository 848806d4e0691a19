"""attention-zoo: Keras 3 CNNs with built-in attention that show where they look.

    import zoo
    model = zoo.load("abn_resnet20.cifar10")          # pretrained, one line
    outputs = model(images)                           # {"logits", "attention_logits", "attention"}
    maps = zoo.attention_maps(model, images)          # every family, upsampled to the input
    zoo.list_models("abn*"); zoo.build("abn_resnet56", num_classes=100)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no TensorFlow/oneDNN info banners (set it to 0 to see them)

from zoo import startup  # noqa: E402

startup.import_tensorflow_quietly()  # before anything imports TensorFlow: its native start-up lines held back

from zoo import models  # noqa: F401, E402  (each family module registers its architectures)
from zoo.evaluation import evaluate  # noqa: E402
from zoo.explain import attention_maps, overlay, save_overlay  # noqa: E402
from zoo.hub import load, save_model  # noqa: E402
from zoo.inference import fold_batch_norm  # noqa: E402
from zoo.prediction import predict  # noqa: E402
from zoo.registry import build, feature_info, get_spec, list_models  # noqa: E402

__version__ = "0.1.0"
__all__ = ["attention_maps", "build", "evaluate", "feature_info", "fold_batch_norm", "get_spec", "list_models",
           "load", "overlay", "predict", "save_model", "save_overlay"]
