"""Cluttered translated MNIST (Mnih et al., "Recurrent Models of Visual Attention", NIPS 2014):
one digit at a random position on a larger canvas, with small fragments cut from other digits as
clutter. Every image comes with the digit's bounding box and pixel mask, the ground truth of the
attention-quality benchmark (:mod:`zoo.explain.benchmark`).

Deterministic: image i of a split depends only on (seed, split, i) and the MNIST arrays, so the
same arguments always give the same dataset, whatever `count`.

    from zoo.data import cluttered
    train = cluttered.cluttered_mnist(*cluttered.load_mnist("mnist.npz")["train"], count=10000)
    cluttered.write_npz("cluttered_mnist60.npz", "mnist.npz")   # x_/y_/boxes_/masks_ train and test
"""

import numpy as np

INK = 64  # a digit pixel >= INK (of 255) belongs to the digit's mask
SPLIT_SEEDS = {"train": 0, "test": 1}


def load_mnist(path=None):
    """``{"train": (x, y), "test": (x, y)}`` from an ``mnist.npz`` (Keras' layout) or, without a
    path, ``keras.datasets.mnist.load_data()`` (downloads once)."""
    if path is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    else:
        with np.load(path) as data:
            x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def place_digit(canvas, digit, rng):
    """Paste `digit` (28x28) at a random position; returns its ``(y0, x0)``."""
    size = canvas.shape[0]
    y, x = rng.integers(0, size - digit.shape[0] + 1, 2)
    region = canvas[y : y + digit.shape[0], x : x + digit.shape[1]]
    np.maximum(region, digit, out=region)
    return int(y), int(x)


def add_clutter(canvas, digits, rng, count, fragment):
    """`count` random `fragment` x `fragment` crops of random digits pasted at random positions
    (a crop is redrawn, up to 10 times, until it holds at least `fragment` ink pixels)."""
    size = canvas.shape[0]
    for _ in range(count):
        for _attempt in range(10):
            source = digits[rng.integers(len(digits))]
            sy, sx = rng.integers(0, source.shape[0] - fragment + 1, 2)
            crop = source[sy : sy + fragment, sx : sx + fragment]
            if (crop >= INK).sum() >= fragment:
                break
        y, x = rng.integers(0, size - fragment + 1, 2)
        region = canvas[y : y + fragment, x : x + fragment]
        np.maximum(region, crop, out=region)


def cluttered_mnist(digits, labels, count=None, canvas=60, clutter=4, fragment=8, seed=0, split="train"):
    """`count` (default: all) cluttered images from MNIST `digits` (N, 28, 28) uint8 and `labels`.

    Image i shows digit i at a random position on a black `canvas` x `canvas` image, under
    `clutter` fragments of `fragment` pixels from other random digits (drawn first, so the digit
    stays intact). Returns a dict: ``x`` (n, canvas, canvas, 3) uint8 (grey, as RGB), ``y`` (n,),
    ``boxes`` (n, 4) ``(y0, x0, y1, x1)`` of the digit's ink (ends exclusive) and ``masks``
    (n, canvas, canvas) bool, the digit's pixels >= :data:`INK`.
    """
    digits, labels = np.asarray(digits, "uint8"), np.asarray(labels)
    if canvas < digits.shape[1]:
        raise ValueError(f"the canvas ({canvas}) must be at least the digit size ({digits.shape[1]})")
    count = len(digits) if count is None else min(int(count), len(digits))
    x = np.zeros((count, canvas, canvas), "uint8")
    boxes = np.zeros((count, 4), "int32")
    masks = np.zeros((count, canvas, canvas), bool)
    for i in range(count):
        rng = np.random.default_rng([seed, SPLIT_SEEDS.get(split, 2), i])
        add_clutter(x[i], digits, rng, clutter, fragment)
        y0, x0 = place_digit(x[i], digits[i], rng)
        ink = digits[i] >= INK
        masks[i, y0 : y0 + 28, x0 : x0 + 28] = ink
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        boxes[i] = (y0 + rows[0], x0 + cols[0], y0 + rows[-1] + 1, x0 + cols[-1] + 1)
    return {"x": np.repeat(x[..., None], 3, axis=-1), "y": labels[:count].astype("int64"), "boxes": boxes,
            "masks": masks}


def write_npz(path, mnist=None, train_count=None, test_count=None, canvas=60, clutter=4, fragment=8, seed=0,
              force=False):
    """Write the train and test splits to `path` (``x_train``, ``y_train``, ``boxes_train``,
    ``masks_train``, the same for test, and ``class_names``), compressed; returns `path`. An
    existing file is kept unless `force`; the file appears only once complete."""
    from zoo import files

    files.check_output(path, force, "file")
    splits = load_mnist(mnist)
    arrays = {"class_names": np.array([str(d) for d in range(10)])}
    for split, count in (("train", train_count), ("test", test_count)):
        data = cluttered_mnist(*splits[split], count, canvas, clutter, fragment, seed, split)
        arrays.update({f"{key}_{split}": value for key, value in data.items()})
    with files.written_file(path, force) as scratch:  # its folder is made; nothing half-written is left
        with open(scratch, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path
