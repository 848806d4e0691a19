"""Training augmentation shared by both engines (numpy and keras only, no TensorFlow).

The padded random crop and horizontal flip of every example are drawn up front for a whole
epoch from ``(seed, epoch)`` and indexed by the example's position in the epoch, so the tf.data
pipeline (:mod:`zoo.data.pipeline`) and the ``model.fit`` batches (:mod:`zoo.training.fit`)
crop and flip the same example the same way, and a resumed run repeats them exactly.
RandAugment, MixUp and CutMix are Keras core layers applied to whole batches.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class AugmentConfig:
    """Training augmentation: padded random crop + horizontal flip (the CIFAR recipe of the
    official ABN code), and optional RandAugment, MixUp or CutMix (Keras core layers)."""

    crop_padding: int = 4
    flip: bool = True
    rand_augment: bool = False
    mixup_alpha: float = 0.0
    cutmix: bool = False

    @property
    def mixes_labels(self):
        return self.mixup_alpha > 0 or self.cutmix


def epoch_order(num_examples, seed, epoch, training):
    """The example order of one epoch: a (seed, epoch)-determined permutation when training."""
    if not training:
        return np.arange(num_examples)
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def crop_flip_params(num_examples, seed, epoch, config: AugmentConfig):
    """``(dy, dx, flip)`` arrays of one epoch, indexed by position: the crop offset into the
    image padded by ``config.crop_padding`` on each side, and whether to mirror it."""
    rng = np.random.default_rng([seed, epoch, 1])
    span = 2 * config.crop_padding + 1
    dy, dx = rng.integers(0, span, (2, num_examples)) if config.crop_padding else np.zeros((2, num_examples), int)
    flip = rng.random(num_examples) < 0.5 if config.flip else np.zeros(num_examples, bool)
    return dy.astype("int32"), dx.astype("int32"), flip


def crop_flip_batch(images, dy, dx, flip, padding):
    """Apply :func:`crop_flip_params` to a numpy batch (B, H, W, C)."""
    _, height, width, _ = images.shape
    out = images
    if padding:
        padded = np.pad(images, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
        out = np.stack([padded[i, dy[i] : dy[i] + height, dx[i] : dx[i] + width] for i in range(len(images))])
    if flip.any():
        out = np.where(flip[:, None, None, None], out[:, :, ::-1], out)
    return out


def batch_augmentation(config: AugmentConfig, num_classes, seed, multilabel=False):
    """Batch-level Keras augmentation (RandAugment, MixUp, CutMix) as ``apply(images, labels)``,
    or None. Integer labels become one-hot when labels are mixed."""
    import keras
    from keras import ops

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
        images = ops.cast(images, "float32")
        if config.mixes_labels:
            labels = ops.cast(labels, "float32") if multilabel else ops.one_hot(ops.cast(labels, "int32"), num_classes)
        for kind, layer in steps:
            if kind == "images":
                images = layer(images, training=True)
            else:
                mixed = layer({"images": images, "labels": labels}, training=True)
                images, labels = mixed["images"], mixed["labels"]
        return images, labels

    return apply
