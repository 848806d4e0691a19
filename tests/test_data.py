"""Data sources and the deterministic, resumable input pipeline."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import CIFAR_JPEG, needs_cifar, toy_images, write_toy_npz
from zoo import data


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_training_epochs_are_deterministic_resumable_and_augmented(toy_source):
    epoch0 = batches(data.make_dataset(toy_source, 8, training=True, seed=5, epoch=0))
    assert len(epoch0) == 8 and epoch0[0][0].shape == (8, 16, 16, 3) and epoch0[0][0].dtype == np.float32
    again = batches(data.make_dataset(toy_source, 8, training=True, seed=5, epoch=0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(epoch0, again))
    resumed = batches(data.make_dataset(toy_source, 8, training=True, seed=5, epoch=0, skip=3 * 8))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(epoch0[3:], resumed))
    epoch1 = batches(data.make_dataset(toy_source, 8, training=True, seed=5, epoch=1))
    assert not np.array_equal(epoch0[0][1], epoch1[0][1])  # reshuffled
    plain = data.make_dataset(toy_source, 64, training=False)
    x, y = next(iter(plain))
    np.testing.assert_array_equal(y, toy_source.labels)  # evaluation keeps the order
    np.testing.assert_array_equal(x, toy_source.images.astype("float32"))
    # augmentation: crops/flips change pixels but every output is a shifted/flipped input
    aug = np.concatenate([b[0] for b in epoch0])
    assert not np.array_equal(np.sort(aug.reshape(64, -1), 0), np.sort(x.numpy().reshape(64, -1), 0))


def test_crop_flip_is_a_padded_crop_and_flip_and_the_same_in_tensorflow_and_numpy():
    from zoo.data import augment, pipeline

    image = (np.arange(4 * 4 * 3, dtype="float32").reshape(4, 4, 3) + 1)
    padded = np.pad(image, [(1, 1), (1, 1), (0, 0)])
    for dy, dx, flip in [(0, 0, False), (2, 1, False), (1, 2, True)]:
        want = padded[dy : dy + 4, dx : dx + 4]
        want = want[:, ::-1] if flip else want
        np.testing.assert_array_equal(
            augment.crop_flip_batch(image[None], np.array([dy]), np.array([dx]), np.array([flip]), 1)[0], want)
        got = pipeline.crop_flip(tf.constant(image), tf.constant(dy), tf.constant(dx), tf.constant(flip), 1)
        np.testing.assert_array_equal(got.numpy(), want)
    dy, dx, flip = augment.crop_flip_params(1000, 3, 0, data.AugmentConfig(crop_padding=2))
    assert dy.min() == 0 and dy.max() == 4 and 0.4 < flip.mean() < 0.6
    again = augment.crop_flip_params(1000, 3, 0, data.AugmentConfig(crop_padding=2))
    assert np.array_equal(dx, again[1])
    no_flip = augment.crop_flip_params(100, 3, 0, data.AugmentConfig(flip=False))[2]
    assert not no_flip.any()


def test_both_engines_see_the_same_training_batches(toy_source):
    """The loop's tf.data pipeline and the fit engine's batches: same order, crops and flips."""
    from zoo.training.fit import ArrayBatches

    for epoch in (0, 3):
        loop = batches(data.make_dataset(toy_source, 16, training=True, seed=7, epoch=epoch))
        fit = ArrayBatches(toy_source, 16, training=True, seed=7, first_epoch=epoch)
        assert len(loop) == len(fit) == 4
        for (x, y), i in zip(loop, range(len(fit))):
            fx, fy = fit[i]
            np.testing.assert_array_equal(x, fx)
            np.testing.assert_array_equal(y, fy)


def test_sharding_splits_an_epoch_between_input_pipelines(toy_source):
    indexed = data.ArraySource(toy_source.images, np.arange(64))  # label = example index: shards are comparable
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        seen.append(np.concatenate([y for _, y in batches(data.make_dataset(indexed, 8, training=True, seed=1,
                                                                                  input_context=context))]))
    assert len(seen[0]) == len(seen[1]) == 32
    assert not set(seen[0]) & set(seen[1])  # no example in both shards
    assert sorted(np.concatenate(seen)) == list(range(64))  # and together the whole epoch, once


def test_npz_and_arrays(tmp_path):
    path = write_toy_npz(tmp_path / "toy.npz")
    train = data.open_source(str(path), "train")
    test = data.open_source(str(path), "test")
    assert (len(train), len(test)) == (64, 32) and train.class_names == ["red", "blue"]
    gray = data.ArraySource(np.zeros((3, 8, 8), "uint8"), [0, 1, 1])
    assert gray.images.shape == (3, 8, 8, 3) and gray.class_names == ["0", "1"]
    with pytest.raises(ValueError, match="labels"):
        data.ArraySource(np.zeros((3, 8, 8, 3)), [0, 1])
    with pytest.raises(ValueError, match="expected keys"):
        np.savez(tmp_path / "bad.npz", a=np.zeros(2))
        data.open_source(str(tmp_path / "bad.npz"))


def test_folder_source_skips_and_reports_corrupt_files(tmp_path, caplog):
    images, labels = toy_images(6, size=12)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / ["cats", "dogs"][label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    (tmp_path / "cats" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "dogs" / "truncated.png").write_bytes((tmp_path / "dogs" / "1.png").read_bytes()[:40])
    (tmp_path / "dogs" / "notes.txt").write_text("ignored: not an image extension")
    source = data.FolderSource(tmp_path, image_size=(16, 16))
    assert source.class_names == ["cats", "dogs"] and len(source) == 6
    assert sorted(p.split("/")[-1] for p in source.skipped) == ["broken.jpg", "truncated.png"]
    assert "broken.jpg" in caplog.text
    x, y = next(iter(data.make_dataset(source, 6)))
    assert x.shape == (6, 16, 16, 3) and sorted(y.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="class sub-folders"):
        data.FolderSource(tmp_path / "cats")


@needs_cifar
def test_offline_cifar10_jpeg_copy():
    test = data.load_cifar10_jpeg(CIFAR_JPEG, "test")
    assert test.images.shape == (10000, 32, 32, 3) and test.images.dtype == np.uint8
    assert test.class_names == list(data.CIFAR10_CLASSES)
    assert np.bincount(test.labels).tolist() == [1000] * 10


def test_optional_keras_augmentations_mix_labels(toy_source):
    config = data.AugmentConfig(rand_augment=True, mixup_alpha=0.4, cutmix=True)
    x, y = next(iter(data.make_dataset(toy_source, 8, training=True, augment=config)))
    assert x.shape == (8, 16, 16, 3) and y.shape == (8, 2)  # one-hot, mixed
    np.testing.assert_allclose(np.sum(y, axis=-1), 1.0, atol=1e-5)
    assert np.any((y.numpy() > 0.01) & (y.numpy() < 0.99))  # some labels really are mixtures
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 255.0


def test_open_source_uses_train_and_test_sub_folders(tmp_path):
    images, labels = toy_images(8, size=8)
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / split / ["red", "blue"][label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}{i}.png")
    train = data.open_source(str(tmp_path), "train", image_size=(8, 8))
    test = data.open_source(str(tmp_path), "test", image_size=(8, 8))
    assert train.class_names == test.class_names == ["blue", "red"]
    assert all("/train/" in p for p in train.paths) and all("/test/" in p for p in test.paths)
    with pytest.raises(ValueError, match="no val/ folder"):
        data.open_source(str(tmp_path), "val")
