"""Data sources: uint8 RGB images with their labels, label names and task.

Every source has ``class_names`` (class or attribute names), ``task`` (``"multiclass"``: integer
labels (N,); ``"multilabel"``: multi-hot labels (N, A)) and ``len()``; sources with random access
(arrays, folders) also have ``labels`` and ``images_at(indices)`` for the ``model.fit`` engine.

- :class:`ArraySource`: numpy arrays and ``.npz`` files (``x_train``/``y_train`` as in
  keras.datasets; ``x``/``attr``/``attr_names`` for attributes), and the offline CIFAR-10 JPEG
  copy (:func:`load_cifar10_jpeg`).
- :class:`FolderSource`: a folder with one sub-folder per class; :class:`AttributeFolderSource`:
  a folder of images with an ``attributes.csv``. Unreadable or corrupt files are reported and
  skipped.
- :class:`TfdsSource`: a tensorflow-datasets name (``"cifar10"``; ``"celeb_a"`` with its
  ``attributes`` dict).

The tf.data pipeline that batches them is :mod:`zoo.data.pipeline`.
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

from zoo.data.images import as_uint8, read_image
from zoo.errors import InvalidInput, OfflineError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class ArraySource:
    """In-memory images (N, H, W, 3) and labels: integers (N,) for ``multiclass``, multi-hot
    (N, A) in {0, 1} for ``multilabel`` (the default task of 2-D labels).

    Images are checked and converted to uint8 (:func:`zoo.data.images.as_uint8`: floats in [0, 1]
    are scaled, NaNs and out-of-range values are an error), grey images become RGB.
    """

    def __init__(self, images, labels, class_names=None, task=None, where="images"):
        images = np.asarray(images)
        if images.ndim == 3:  # grayscale (N, H, W)
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must have shape (N, H, W, 3) or (N, H, W, 1), got {images.shape}")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        labels = np.asarray(labels)
        self.task = task or ("multilabel" if labels.ndim == 2 and labels.shape[1] > 1 else "multiclass")
        if self.task == "multiclass":
            labels = labels.reshape(-1)
            if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
                raise ValueError("class labels must be integers; for multi-label targets pass (N, A) arrays")
            labels = labels.astype("int64")
        else:
            labels = np.where(labels < 0, 0, labels).astype("float32")  # CelebA's -1 = absent
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = as_uint8(images, where)
        self.labels = labels
        self.named = class_names is not None  # unnamed labels are indices into the model's classes
        if class_names is None:
            count = labels.shape[1] if self.task == "multilabel" else (int(labels.max()) + 1 if len(labels) else 0)
            class_names = [str(i) for i in range(count)]
        self.class_names = list(class_names)

    def __len__(self):
        return len(self.labels)

    def images_at(self, indices):
        return self.images[indices]

    @classmethod
    def from_npz(cls, path, split="train"):
        """An ``.npz`` in one of these layouts:

        - ``x_<split>``/``y_<split>`` (keras.datasets) or ``x``/``y``, optionally ``class_names``;
        - attributes: ``x``/``attr``/``attr_names`` (or ``x_<split>``/``attr_<split>``); without
          split keys, images with an ``ids`` value divisible by 5 are the ``test`` split and the
          others ``train`` (``split="all"``: every image);
        - the CIFAR-10 JPEG layout (``<split>_jpeg``/``<split>_offsets``/``y_<split>``).
        """
        where = f"images of {path}"
        with np.load(path) as f:
            keys = set(f.files)
            names = [str(c) for c in f["class_names"]] if "class_names" in keys else None
            if f"{split}_jpeg" in keys:
                return cls(decode_jpeg_blob(f[f"{split}_jpeg"], f[f"{split}_offsets"]), f[f"y_{split}"], names)
            if "attr_names" in keys:
                names = [str(c) for c in f["attr_names"]]
                if f"x_{split}" in keys and f"attr_{split}" in keys:
                    return cls(f[f"x_{split}"], f[f"attr_{split}"], names, "multilabel", where)
                if "x" in keys and "attr" in keys:
                    rows = id_split(f["ids"], split) if "ids" in keys else slice(None)
                    return cls(f["x"][rows], f["attr"][rows], names, "multilabel", where)
            for x_key, y_key in ((f"x_{split}", f"y_{split}"), ("x", "y")):
                if x_key in keys and y_key in keys:
                    return cls(f[x_key], f[y_key], names, where=where)
        raise ValueError(f"{path}: expected keys x_{split}/y_{split}, x/y or x/attr/attr_names, found {sorted(keys)}")

    def with_class_names(self, class_names):
        """The same data with labels renumbered to `class_names` (by name): a class the model does
        not know is an error. Multi-label attributes are reordered the same way."""
        if list(class_names) == self.class_names or not self.named:
            return self
        unknown = [n for n in self.class_names if n not in class_names]
        if unknown:
            raise ValueError(f"the data has classes the model does not know: {unknown}; the model's are "
                             f"{list(class_names)}")
        index = {name: i for i, name in enumerate(class_names)}
        if self.task == "multilabel":
            if len(class_names) != len(self.class_names):
                raise ValueError(f"the data has attributes {self.class_names}, the model {list(class_names)}")
            columns = [self.class_names.index(n) for n in class_names]
            return ArraySource(self.images, self.labels[:, columns], class_names, self.task)
        mapping = np.array([index[n] for n in self.class_names])
        return ArraySource(self.images, mapping[self.labels], class_names, self.task)

    def load(self, index):
        return tf.gather(self._images_const, index), tf.gather(self._labels_const, index)

    def element_dataset(self, order):
        """(image, label) for the given index order."""
        self._images_const = tf.constant(self.images)
        self._labels_const = tf.constant(self.labels)
        return tf.data.Dataset.from_tensor_slices(order).map(self.load)


def id_split(ids, split):
    """Rows of a deterministic split by image id: ``test`` = ``id % 5 == 0``, ``train`` = the rest;
    for choices made before the test split is looked at, ``train`` divides into ``val``
    (``id % 5 == 1``) and ``fit`` (``id % 5`` in 2, 3, 4)."""
    ids = np.asarray(ids)
    rows = {"test": ids % 5 == 0, "train": ids % 5 != 0, "val": ids % 5 == 1, "fit": ids % 5 >= 2,
            "all": np.ones(len(ids), bool)}
    if split not in rows:
        raise ValueError(f"split must be one of {tuple(rows)} for an id-split .npz, got {split!r}")
    return np.flatnonzero(rows[split])


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


class PathSource:
    """Image files with labels: decoded by tf.data for the loop engine, by Pillow
    (:func:`zoo.data.images.read_image`) for the fit engine; resized to `image_size`."""

    def __len__(self):
        return len(self.labels)

    def keep_readable(self, paths, labels, validate):
        """Drop (and report in ``self.skipped``) the files that cannot be decoded."""
        self.skipped = []
        if validate:
            keep = [i for i, p in enumerate(paths) if self._readable(p)]
            paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
        if not paths:
            raise ValueError(f"no readable images under {self.root} (extensions {IMAGE_EXTENSIONS})")
        self.paths = np.array(paths)
        self.labels = np.array(labels, dtype="int64" if self.task == "multiclass" else "float32")

    def _readable(self, path):
        try:
            if tf is None:
                read_image(path)
            else:
                tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return True
        except (ValueError, tf.errors.OpError if tf is not None else ValueError) as err:
            log.warning("skipping unreadable image %s: %s", path, str(err).splitlines()[0])
            self.skipped.append(path)
            return False

    def images_at(self, indices):
        return np.stack([read_image(self.paths[i], self.image_size) for i in np.atleast_1d(indices)])

    def load(self, index):
        image = tf.io.decode_image(tf.io.read_file(tf.gather(self.paths, index)), channels=3, expand_animations=False)
        image = tf.image.resize(image, self.image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), tf.gather(self.labels, index)

    def element_dataset(self, order):
        ds = tf.data.Dataset.from_tensor_slices(order).map(self.load, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.ignore_errors(log_warning=True)


class FolderSource(PathSource):
    """Images in ``root/<class_name>/*.{png,jpg,...}``.

    Class indices follow `class_names` when given (a model's classes: folders are matched by
    name, a folder the model does not know is an error), else the sorted sub-folder names.
    Every file is decoded once when the folder is scanned (``validate=True``); files that cannot
    be decoded are logged, listed in ``self.skipped`` and left out.
    """

    task = "multiclass"

    def __init__(self, root, image_size=(32, 32), class_names: Optional[Sequence[str]] = None, validate=True):
        self.root = root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
        found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise ValueError(f"{root} has no class sub-folders: expected {root}/<class_name>/<image files>")
        self.class_names = list(class_names) if class_names is not None else found
        unknown = sorted(set(found) - set(self.class_names))
        if unknown:
            raise ValueError(f"{root} has sub-folders that are not classes of the model: {unknown}; "
                             f"its classes are {self.class_names}")
        self.image_size = tuple(image_size)
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            folder = root / name
            files = []
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            paths += [str(p) for p in files]
            labels += [label] * len(files)
        self.keep_readable(paths, labels, validate)


ATTRIBUTES_CSV = "attributes.csv"


class AttributeFolderSource(PathSource):
    """A folder of images with ``attributes.csv``: a header ``file,<attr1>,<attr2>,...`` and one
    row per image (its path relative to the folder), values 1 (present) and 0 or -1 (absent)."""

    task = "multilabel"

    def __init__(self, root, image_size=(32, 32), class_names: Optional[Sequence[str]] = None, validate=True,
                 csv_name=ATTRIBUTES_CSV):
        import csv

        self.root = root = Path(root)
        table = root / csv_name
        if not table.is_file():
            raise FileNotFoundError(f"no such file: {table}")
        with open(table, newline="") as f:
            rows = list(csv.reader(f))
        if len(rows) < 2 or len(rows[0]) < 2:
            raise ValueError(f"{table} needs a header 'file,<attribute>,...' and one row per image")
        names = [n.strip() for n in rows[0][1:]]
        self.class_names = list(class_names) if class_names is not None else names
        if sorted(self.class_names) != sorted(names):
            raise ValueError(f"{table} has the attributes {names}, the model {self.class_names}")
        columns = [names.index(n) for n in self.class_names]
        self.image_size = tuple(image_size)
        paths, labels = [], []
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            try:
                values = [float(v) for v in row[1:]]
            except ValueError:
                raise ValueError(f"{table} line {line}: attribute values must be 1, 0 or -1, got {row[1:]}") from None
            if len(values) != len(names) or not set(values) <= {-1.0, 0.0, 1.0}:
                raise ValueError(f"{table} line {line}: expected {len(names)} values of 1, 0 or -1, got {row[1:]}")
            paths.append(str(inside_folder(root, row[0], f"{table} line {line}")))
            labels.append([1.0 if values[c] > 0 else 0.0 for c in columns])
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{table} lists {len(missing)} files that do not exist, e.g. {missing[0]}")
        self.keep_readable(paths, labels, validate)


def inside_folder(root, relative, where):
    """`root / relative`, refusing a path that leaves `root` (absolute, or through ``..`` or a
    link): a data file names images of its own folder only."""
    candidate = Path(root) / relative
    if Path(relative).is_absolute() or not candidate.resolve().is_relative_to(Path(root).resolve()):
        raise InvalidInput(f"{where}: {relative!r} is outside the data folder {root}; list the images by their path "
                           "relative to that folder (copy or link them inside it)")
    return candidate


class TfdsSource:
    """A tensorflow-datasets dataset: ``image`` + ``label`` (its supervised keys, multiclass), or
    ``image`` + an ``attributes`` dict of booleans (celeb_a; multilabel, attributes in the
    dataset's order)."""

    def __init__(self, name, split="train", image_size=(32, 32), data_dir=None, download=True):
        import tensorflow_datasets as tfds

        from zoo.weights import is_offline

        if is_offline():
            check_prepared_offline(tfds, name, data_dir)
            download = False
        dataset, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir, download=download)
        if info.supervised_keys and "attributes" not in info.features:
            image_key, label_key = info.supervised_keys
            self.task, self.class_names = "multiclass", list(info.features[label_key].names)
            self.dataset = dataset.map(lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int64)))
        elif "attributes" in info.features and "image" in info.features:
            self.task, self.class_names = "multilabel", list(info.features["attributes"].keys())
            names = self.class_names
            self.dataset = dataset.map(
                lambda ex: (ex["image"], tf.stack([tf.cast(ex["attributes"][n], tf.float32) for n in names])))
        else:
            raise ValueError(f"tfds dataset {name!r} has neither supervised keys nor an 'attributes' dict "
                             f"(features: {list(info.features)})")
        try:
            self.num_examples = int(info.splits[split].num_examples)
        except KeyError:  # split metadata unavailable (e.g. tfds.testing.mock_data)
            self.num_examples = int(dataset.cardinality())
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
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label


def check_prepared_offline(tfds, name, data_dir=None):
    """Offline mode (``ATTENTION_ZOO_OFFLINE=1``): a tensorflow-datasets name must already be
    prepared on this machine; no download and no look-up on the network is tried."""
    builder = None
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
        prepared = builder.is_prepared()
    except Exception as err:  # tfds raises many kinds for an unknown or unprepared name
        prepared, reason = False, f" ({str(err).splitlines()[0][:160]})" if str(err) else ""
    else:
        reason = ""
    if not prepared:
        where = getattr(builder, "data_dir", None) or data_dir or "the tensorflow-datasets folder"
        raise OfflineError(f"ATTENTION_ZOO_OFFLINE is set and tfds:{name} is not prepared in {where}{reason}: "
                           f"prepare it on a machine with network access (tfds build {name}) and copy it here, "
                           "or unset ATTENTION_ZOO_OFFLINE")


def open_source(data, split="train", image_size=(32, 32), class_names=None):
    """A source from what the user has: a source object, a folder (class sub-folders, or an
    ``attributes.csv``; either inside ``train/``/``test/`` sub-folders), an ``.npz`` file, an
    ``(images, labels)`` tuple, or a tensorflow-datasets name (``"tfds:cifar10"``).

    With `class_names` (a model's classes or attributes), the data's labels are mapped to them by
    name.
    """
    if hasattr(data, "class_names"):
        source = data
    elif isinstance(data, tuple):
        source = ArraySource(*data, class_names=class_names)
    else:
        source = open_path(str(data), split, image_size, class_names)
    if class_names is not None and isinstance(source, ArraySource):
        source = source.with_class_names(class_names)
    if isinstance(data, (str, os.PathLike)) and getattr(source, "origin", None) is None:
        source.origin = str(data) if str(data).startswith("tfds:") else os.path.abspath(data)  # for --resume checks
        source.split = split
    return source


def open_path(data, split, image_size, class_names):
    if os.path.isdir(data):
        root = data
        if os.path.isdir(os.path.join(data, split)):
            root = os.path.join(data, split)
        elif os.path.isdir(os.path.join(data, "train")):  # a split layout without the requested split
            raise ValueError(f"{data} has a train/ folder but no {split}/ folder")
        if os.path.isfile(os.path.join(root, ATTRIBUTES_CSV)):
            return AttributeFolderSource(root, image_size, class_names)
        return FolderSource(root, image_size, class_names)
    if data.endswith(".npz"):
        if not os.path.exists(data):
            raise FileNotFoundError(f"no such file: {data}")
        return ArraySource.from_npz(data, split)
    if data.startswith("tfds:"):
        return TfdsSource(data.removeprefix("tfds:"), split, image_size)
    if os.path.isfile(data):
        raise InvalidInput(f"{data} is a file, not a dataset: --data takes a folder (one sub-folder per class, or an "
                           "attributes.csv), an .npz file or tfds:NAME; to classify single images use zoo predict")
    if os.sep in data or data.startswith(".") or os.path.splitext(data)[1]:
        raise FileNotFoundError(f"no such folder or file: {data} (a tensorflow-datasets name is written tfds:NAME)")
    return TfdsSource(data, split, image_size)
