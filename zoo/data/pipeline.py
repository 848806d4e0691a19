"""The tf.data input pipeline (TensorFlow; kept out of the model modules).

:func:`make_dataset` turns a source (:mod:`zoo.data.sources`) into batches. Training pipelines
are a pure function of ``(seed, epoch, position)``: the example order comes from ``(seed, epoch)``
(:func:`zoo.data.augment.epoch_order`) and every image's crop and flip from
``(seed, epoch, position)`` (:func:`zoo.data.augment.crop_flip_params`), the same numbers the
``model.fit`` engine uses, so both engines see the same batches and a run resumed in the middle
of an epoch sees exactly the batches an uninterrupted run would. The optional RandAugment / MixUp
/ CutMix use Keras layers whose random state is not checkpointed.
"""

from typing import Optional

import tensorflow as tf

from zoo.data.augment import AugmentConfig, batch_augmentation, crop_flip_params, epoch_order
from zoo.data.sources import TfdsSource


def crop_flip(image, dy, dx, flip, padding):
    """The TensorFlow twin of :func:`zoo.data.augment.crop_flip_batch` for one image."""
    if padding:
        shape = tf.shape(image)
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        image = tf.slice(padded, tf.stack([dy, dx, 0]), shape)
    return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)


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
    multilabel = getattr(source, "task", "multiclass") == "multilabel"
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

    num_examples = max(1, len(source))
    dy, dx, flip = (tf.constant(p) for p in crop_flip_params(num_examples, seed, epoch, augment))

    def finish(image, label, position):
        if training:
            index = (position * num_shards + shard) % num_examples  # position in the epoch, as in zoo.training.fit
            image = crop_flip(image, dy[index], dx[index], flip[index], augment.crop_padding)
        return tf.cast(image, tf.float32), label

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    if training:
        extra = batch_augmentation(augment, len(source.class_names), seed * 7919 + epoch, multilabel)
        if extra is not None:
            ds = ds.map(extra, num_parallel_calls=1)
    return ds.prefetch(tf.data.AUTOTUNE)
