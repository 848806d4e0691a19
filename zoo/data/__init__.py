"""Datasets and input pipelines: sources (arrays, ``.npz``, folders, tensorflow-datasets) and the
deterministic, resumable tf.data pipeline (:mod:`zoo.data.sources`)."""

from zoo.data.sources import (  # noqa: F401
    CIFAR10_CLASSES,
    IMAGE_EXTENSIONS,
    ArraySource,
    AugmentConfig,
    FolderSource,
    TfdsSource,
    augment_image,
    batch_augmentation,
    decode_jpeg_blob,
    epoch_order,
    load_cifar10_jpeg,
    make_dataset,
    open_source,
)
