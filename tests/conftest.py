"""Shared fixtures: tiny models and data so the suite stays fast on a 2-core CPU."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
CIFAR_JPEG = SHARED_DATASETS / "cifar10-jpeg.npz"

# A tiny ABN (depth 8 = one basic block per stage, width 4) for loop/IO tests.
TINY = {"depth": 8, "width": 4}


def toy_images(n=64, size=16, num_classes=2, seed=0):
    """A learnable toy problem: noise plus a bright square of the class colour (red, blue, green)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 60, (n, size, size, 3)).astype("uint8")
    for i, c in enumerate(labels):
        y, x = rng.integers(0, size // 2, 2)
        images[i, y : y + size // 2, x : x + size // 2, [0, 2, 1][c % 3]] += 150
    return images, labels


@pytest.fixture
def toy_source():
    from zoo.data import ArraySource

    images, labels = toy_images()
    return ArraySource(images, labels, ["red", "blue"])


@pytest.fixture
def tiny_model():
    import zoo

    return zoo.build("abn_resnet20", num_classes=2, input_shape=(16, 16, 3), **TINY)


def write_toy_npz(path, n_train=64, n_test=32, size=16):
    x_train, y_train = toy_images(n_train, size, seed=0)
    x_test, y_test = toy_images(n_test, size, seed=1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array(["red", "blue"]))
    return path


needs_cifar = pytest.mark.skipif(not CIFAR_JPEG.exists(), reason="../shared/datasets/cifar10-jpeg.npz is absent")
