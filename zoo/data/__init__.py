"""Datasets and input pipelines.

- :mod:`zoo.data.sources`: arrays, ``.npz`` files, image folders (+ attributes CSV) and
  tensorflow-datasets, each with its label names and task;
- :mod:`zoo.data.augment`: crop/flip parameters and batch augmentation shared by both engines;
- :mod:`zoo.data.pipeline`: the deterministic, resumable tf.data pipeline (TensorFlow).
"""

from zoo.data.augment import AugmentConfig, batch_augmentation, crop_flip_params, epoch_order  # noqa: F401
from zoo.data.sources import (  # noqa: F401
    CIFAR10_CLASSES,
    IMAGE_EXTENSIONS,
    ArraySource,
    FolderSource,
    TfdsSource,
    decode_jpeg_blob,
    load_cifar10_jpeg,
    open_source,
)


def make_dataset(*args, **kwargs):
    """:func:`zoo.data.pipeline.make_dataset` (imported on use: it needs TensorFlow)."""
    from zoo.data.pipeline import make_dataset as make

    return make(*args, **kwargs)
