"""Datasets and input pipelines (TensorFlow tf.data; kept out of the model modules).

Sources (all give uint8 RGB images and integer labels, plus class names):
- :class:`ArraySource`: numpy arrays, ``.npz`` files, and the offline CIFAR-10 JPEG copy
  (:func:`load_cifar10_jpeg`).
- :class:`FolderSource`: a folder with one sub-folder per class; unreadable or corrupt files are
  reported and skipped.
- :class:`TfdsSource`: a tensorflow-datasets name (``"cifar10"``, ``"oxford_flowers102"``...).

:func:`make_dataset` turns a source into batches. Training pipelines are a pure function of
``(seed, epoch, position)``: the shuffle order comes from ``(seed, epoch)`` and every image's
augmentation from stateless ops seeded by ``(seed, epoch, position)``, so a run resumed in the
middle of an epoch sees exactly the batches an uninterrupted run would (see
:class:`zoo.train.Trainer`). The optional RandAugment / MixUp / CutMix use Keras layers whose
random state is not checkpointed.
"""

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

try:  # tf.data pipelines need TensorFlow; the array / .npz loaders also work without it (JAX GPU machines)
    import tensorflow as tf
except ImportError:  # pragma: no cover - exercised on machines without TensorFlow
    tf = None

from zoo.training.recipe import AugmentConfig  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class ArraySource:
    """In-memory images (N, H, W, 3) uint8 and labels (N,)."""

    def __init__(self, images, labels, class_names=None):
        images = np.asarray(images)
        if images.ndim == 3:  # grayscale (N, H, W)
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must have shape (N, H, W, 3) or (N, H, W, 1), got {images.shape}")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        labels = np.asarray(labels).astype("int64").reshape(-1)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images.astype("uint8") if images.dtype != np.uint8 else images
        self.labels = labels
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]

    def __len__(self):
        return len(self.labels)

    @classmethod
    def from_npz(cls, path, split="train"):
        """An ``.npz`` with ``x_<split>``/``y_<split>`` (Keras datasets layout) or ``x``/``y`` keys,
        optionally ``class_names``; or the CIFAR-10 JPEG layout (``<split>_jpeg``/offsets)."""
        with np.load(path) as f:
            keys = set(f.files)
            names = [str(c) for c in f["class_names"]] if "class_names" in keys else None
            if f"{split}_jpeg" in keys:
                return cls(decode_jpeg_blob(f[f"{split}_jpeg"], f[f"{split}_offsets"]), f[f"y_{split}"], names)
            for x_key, y_key in ((f"x_{split}", f"y_{split}"), ("x", "y")):
                if x_key in keys and y_key in keys:
                    return cls(f[x_key], f[y_key], names)
        raise ValueError(f"{path}: expected keys x_{split}/y_{split} or x/y, found {sorted(keys)}")

    def load(self, index):
        return tf.gather(self._images_const, index), tf.gather(self._labels_const, index)

    def element_dataset(self, order):
        """(image, label) for the given index order."""
        self._images_const = tf.constant(self.images)
        self._labels_const = tf.constant(self.labels)
        return tf.data.Dataset.from_tensor_slices(order).map(self.load)


def decode_jpeg_blob(blob, offsets):
    """Decode concatenated JPEG files (``blob[offsets[i]:offsets[i+1]]``) to a uint8 array
    (TensorFlow's decoder, or Pillow's where TensorFlow is absent)."""
    files = [blob[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
    if tf is not None:
        return np.stack([tf.io.decode_jpeg(f, channels=3).numpy() for f in files])
    import io

    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(f)).convert("RGB")) for f in files])


def load_cifar10_jpeg(path, split="train"):
    """The offline CIFAR-10 JPEG (q75) copy as an :class:`ArraySource` (decoded in seconds)."""
    return ArraySource.from_npz(path, split)


class FolderSource:
    """Images in ``root/<class_name>/*.{png,jpg,...}``; class index = sorted sub-folder order.

    Every file is fully decoded once when the folder is scanned (``validate=True``); files that
    cannot be decoded are logged, listed in ``self.skipped`` and left out, so a run never
    crashes on them. Images are resized to `image_size` (height, width).
    """

    def __init__(self, root, image_size=(32, 32), class_names: Optional[Sequence[str]] = None, validate=True):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise ValueError(f"{root} has no class sub-folders: expected {root}/<class_name>/<image files>")
        self.class_names = list(class_names) if class_names is not None else found
        unknown = set(found) - set(self.class_names)
        if unknown:
            raise ValueError(f"{root} has sub-folders that are not known classes: {sorted(unknown)}")
        self.image_size = tuple(image_size)
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            folder = root / name
            files = []
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            paths += [str(p) for p in files]
            labels += [label] * len(files)
        self.skipped = []
        if validate:
            keep = [i for i, p in enumerate(paths) if self._readable(p)]
            paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
        if not paths:
            raise ValueError(f"no readable images under {root} (extensions {IMAGE_EXTENSIONS})")
        self.paths = np.array(paths)
        self.labels = np.array(labels, dtype="int64")

    def __len__(self):
        return len(self.labels)

    def _readable(self, path):
        try:
            tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return True
        except (tf.errors.InvalidArgumentError, tf.errors.OpError) as err:
            log.warning("skipping unreadable image %s: %s", path, str(err).splitlines()[0])
            self.skipped.append(path)
            return False

    def load(self, index):
        image = tf.io.decode_image(tf.io.read_file(tf.gather(self.paths, index)), channels=3, expand_animations=False)
        image = tf.image.resize(image, self.image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), tf.gather(self.labels, index)

    def element_dataset(self, order):
        ds = tf.data.Dataset.from_tensor_slices(order).map(self.load, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.ignore_errors(log_warning=True)


class TfdsSource:
    """A tensorflow-datasets dataset (``tfds.load(name, split=split, as_supervised=True)``)."""

    def __init__(self, name, split="train", image_size=(32, 32), data_dir=None):
        import tensorflow_datasets as tfds

        self.dataset, info = tfds.load(name, split=split, as_supervised=True, with_info=True, data_dir=data_dir)
        label = info.features[info.supervised_keys[1]]
        self.class_names = list(label.names)
        try:
            self.num_examples = int(info.splits[split].num_examples)
        except KeyError:  # split metadata unavailable (e.g. tfds.testing.mock_data)
            self.num_examples = int(self.dataset.cardinality())
        self.image_size = tuple(image_size)

    def __len__(self):
        return self.num_examples

    def ordered_dataset(self, training, seed, epoch):
        ds = self.dataset
        if training:
            ds = ds.shuffle(min(self.num_examples, 10_000), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
        return ds.map(self._resize, num_parallel_calls=tf.data.AUTOTUNE)

    def _resize(self, image, label):
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        image = tf.image.resize(image, self.image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), tf.cast(label, tf.int64)


def open_source(data, split="train", image_size=(32, 32), class_names=None):
    """A source from what the user has: a source object, a folder, an ``.npz`` file, a
    ``(images, labels)`` tuple, or a tensorflow-datasets name (``"tfds:cifar10"`` or ``"cifar10"``)."""
    if hasattr(data, "class_names"):
        return data
    if isinstance(data, tuple):
        return ArraySource(*data, class_names=class_names)
    data = str(data)
    if os.path.isdir(data):
        split_dir = os.path.join(data, split)
        if os.path.isdir(split_dir):
            return FolderSource(split_dir, image_size, class_names)
        if os.path.isdir(os.path.join(data, "train")):  # a split layout without the requested split
            raise ValueError(f"{data} has a train/ folder but no {split}/ folder")
        return FolderSource(data, image_size, class_names)
    if data.endswith(".npz"):
        if not os.path.exists(data):
            raise FileNotFoundError(f"{data} does not exist")
        return ArraySource.from_npz(data, split)
    name = data.removeprefix("tfds:")
    return TfdsSource(name, split, image_size)


def epoch_order(num_examples, seed, epoch, training):
    """The example order of one epoch: a (seed, epoch)-determined permutation when training."""
    if not training:
        return np.arange(num_examples)
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def augment_image(image, seed, config: AugmentConfig):
    """Padded random crop and random horizontal flip, stateless in `seed` (shape (2,) int)."""
    if config.crop_padding:
        p = config.crop_padding
        padded = tf.pad(image, [[p, p], [p, p], [0, 0]])
        image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seed)
    if config.flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    return image


def batch_augmentation(config: AugmentConfig, num_classes, seed):
    """Batch-level Keras augmentation layers (RandAugment, MixUp, CutMix) or None."""
    import keras

    steps = []
    if config.rand_augment:
        steps.append(("images", keras.layers.RandAugment(value_range=(0, 255), seed=seed)))
    if config.mixup_alpha > 0:
        steps.append(("mix", keras.layers.MixUp(alpha=config.mixup_alpha, seed=seed)))
    if config.cutmix:
        steps.append(("mix", keras.layers.CutMix(seed=seed)))
    if not steps:
        return None

    def apply(images, labels):
        images = tf.cast(images, tf.float32)
        if config.mixes_labels:
            labels = tf.one_hot(labels, num_classes)
        for kind, layer in steps:
            if kind == "images":
                images = layer(images, training=True)
            else:
                mixed = layer({"images": images, "labels": labels}, training=True)
                images, labels = mixed["images"], mixed["labels"]
        return images, labels

    return apply


def make_dataset(
    source,
    batch_size,
    training=False,
    seed=0,
    epoch=0,
    skip=0,
    augment: Optional[AugmentConfig] = None,
    input_context: "Optional[tf.distribute.InputContext]" = None,
):
    """Batches of ``(float32 images in [0, 255], labels)`` for one epoch of `source`.

    - `batch_size` is the batch of this pipeline (per replica under ``tf.distribute``).
    - `skip` examples of this pipeline's epoch are skipped (resuming mid-epoch).
    - With `input_context` (``distribute_datasets_from_function``) the epoch is sharded across
      input pipelines (workers).
    Training drops the last partial batch; evaluation keeps it.
    """
    augment = augment or AugmentConfig()
    shard, num_shards = 0, 1
    if input_context:
        shard, num_shards = input_context.input_pipeline_id, input_context.num_input_pipelines
    if isinstance(source, TfdsSource):
        ds = source.ordered_dataset(training, seed, epoch).shard(num_shards, shard).skip(skip)
        positions = tf.data.Dataset.range(skip, 2**62)
        ds = tf.data.Dataset.zip((ds, positions)).map(lambda pair, pos: (pair[0], pair[1], pos))
    else:
        order = epoch_order(len(source), seed, epoch, training)[shard::num_shards][skip:]
        ds = source.element_dataset(order)
        positions = tf.data.Dataset.range(skip, skip + len(order))
        ds = tf.data.Dataset.zip((ds, positions)).map(lambda pair, pos: (pair[0], pair[1], pos))

    def finish(image, label, position):
        if training:
            element_seed = tf.stack([tf.constant(seed * 1_000_003 + epoch * 7919 + shard, tf.int64), position])
            image = augment_image(image, element_seed, augment)
        return tf.cast(image, tf.float32), label

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    if training:
        extra = batch_augmentation(augment, len(source.class_names), seed * 7919 + epoch)
        if extra is not None:
            ds = ds.map(extra, num_parallel_calls=1)
    return ds.prefetch(tf.data.AUTOTUNE)
