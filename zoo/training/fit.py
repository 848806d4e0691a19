"""Backend-agnostic training with ``model.fit`` (JAX, PyTorch or TensorFlow).

For machines without TensorFlow (the lent GPU machines run ``KERAS_BACKEND=jax``). It trains the
same recipe as :mod:`zoo.train` (:class:`zoo.recipe.TrainConfig`): the family loss from the
registry, SGD with momentum, L2 weight decay added to the loss (the same gradient as the
loop's coupled decay), cosine/step schedules, mixed precision, padded-crop + flip augmentation
(numpy, seeded by epoch and batch), checkpoints and resume with
``keras.callbacks.BackupAndRestore``, a CSV log. What it does not do: tf.distribute (use
:mod:`zoo.train`), tf.data sources (folders are read with Pillow, tfds needs TensorFlow), and
bit-exact resumes (a resume restarts the interrupted epoch, with that epoch's data order, so the
steps it had done run twice).
"""

import math
import os
import time

import keras
import numpy as np
from keras import ops

from zoo import registry
from zoo.training.recipe import AugmentConfig, TrainConfig, dtype_policy, learning_rate_schedule, run_summary


class ArrayBatches(keras.utils.PyDataset):
    """Batches ``(float32 images in [0, 255], int labels)`` of in-memory arrays.

    Training batches are reshuffled every epoch with a ``(seed, epoch)`` permutation and
    augmented per image (padded random crop, horizontal flip) with ``(seed, epoch, batch)``
    random numbers; the last partial batch is dropped. Evaluation keeps the order and every image.
    """

    def __init__(self, images, labels, batch_size, training=False, seed=0, augment=None, first_epoch=0):
        super().__init__()
        self.images, self.labels = np.asarray(images), np.asarray(labels).astype("int64")
        self.batch_size, self.training, self.seed = batch_size, training, seed
        self.augment = augment or AugmentConfig()
        self.epoch = first_epoch
        self.order = self._order()

    def _order(self):
        if not self.training:
            return np.arange(len(self.labels))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.labels))

    def __len__(self):
        if self.training:
            return len(self.labels) // self.batch_size
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images, labels = self.images[rows], self.labels[rows]
        if self.training:
            images = augment_batch(images, np.random.default_rng([self.seed, self.epoch, index]), self.augment)
        return images.astype("float32"), labels

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.order = self._order()

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)


def augment_batch(images, rng, config: AugmentConfig):
    """Per-image padded random crop and horizontal flip of a uint8 batch (B, H, W, C)."""
    batch, height, width, _ = images.shape
    out = images
    if config.crop_padding:
        p = config.crop_padding
        padded = np.pad(images, [(0, 0), (p, p), (p, p), (0, 0)])
        dy, dx = rng.integers(0, 2 * p + 1, (2, batch))
        out = np.stack([padded[i, dy[i] : dy[i] + height, dx[i] : dx[i] + width] for i in range(batch)])
    if config.flip:
        flip = rng.random(batch) < 0.5
        out = np.where(flip[:, None, None, None], out[:, :, ::-1], out)
    return out


class FitModel(keras.Model):
    """Wraps a zoo model for ``model.fit``: the family loss plus L2 decay, and top-1 accuracy."""

    def __init__(self, model, loss_fn, weight_decay=0.0, loss_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.loss_fn = loss_fn
        self.weight_decay = weight_decay
        self.loss_kwargs = dict(loss_kwargs or {})
        self.accuracy = keras.metrics.Accuracy(name="accuracy")

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = ops.mean(self.loss_fn(y, y_pred, **self.loss_kwargs))
        if self.weight_decay:  # d/dw (wd/2 |w|^2) = wd * w: PyTorch-style coupled decay, as in zoo.train
            loss = loss + 0.5 * self.weight_decay * sum(ops.sum(ops.square(v)) for v in self.model.trainable_weights)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        true = y if len(y.shape) == 1 else ops.argmax(y, axis=-1)
        self.accuracy.update_state(true, ops.argmax(y_pred["logits"], axis=-1))
        return super().compute_metrics(x, y, y_pred, sample_weight)


def fit(model, train_data, config: TrainConfig, test_data=None, build_kwargs=None, output_dir=None, resume=False):
    """Train `model` (architecture name or factory) with ``model.fit`` on ``(images, labels)``
    arrays or an :class:`zoo.data.ArraySource`; returns ``(model, history_dict)``.

    Checkpoints go to ``config.checkpoint_dir`` every ``config.checkpoint_every`` steps
    (BackupAndRestore); without ``resume`` an existing backup there is an error.
    """
    images, labels, class_names = unpack(train_data)
    steps_per_epoch = len(labels) // config.batch_size
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(config.mixed_precision):
        if callable(model):
            net = model()
        else:
            net = registry.build(model, **{"num_classes": len(class_names), **(build_kwargs or {})})
    net.zoo_config.setdefault("class_names", class_names)
    trainer = FitModel(net, registry.get_spec(net.zoo_config["arch"]).loss, config.weight_decay,
                       {"label_smoothing": config.label_smoothing, **config.loss_kwargs})
    optimizer = keras.optimizers.SGD(learning_rate_schedule(config, steps_per_epoch), momentum=config.momentum,
                                     nesterov=config.nesterov)
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    trainer.compile(optimizer=optimizer)
    trainer(np.asarray(images[:1], "float32"))  # built before fit (BackupAndRestore needs it)
    batches = ArrayBatches(images, labels, config.batch_size, True, config.seed, config.augment)
    callbacks = [DataEpoch(batches), EpochTimer()]
    if config.checkpoint_dir:
        os.makedirs(config.checkpoint_dir, exist_ok=True)
        backup = os.path.join(config.checkpoint_dir, "backup")
        if os.path.isdir(backup) and os.listdir(backup) and not resume:
            raise FileExistsError(f"{backup} holds a backup: pass resume=True (--resume) or use another directory")
        callbacks.append(keras.callbacks.BackupAndRestore(backup, save_freq=config.checkpoint_every,
                                                          delete_checkpoint=False))
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(config.checkpoint_dir, "log.csv"), append=resume))
    validation = None
    if test_data is not None:
        test_images, test_labels, _ = unpack(test_data)
        validation = ArrayBatches(test_images, test_labels, config.eval_batch_size)
    epochs = config.epochs
    if config.max_steps:
        epochs = max(1, math.ceil(config.max_steps / steps_per_epoch))
    history = trainer.fit(batches, epochs=epochs, validation_data=validation, callbacks=callbacks,
                          verbose=1 if config.progress else 2,
                          steps_per_epoch=min(steps_per_epoch, config.max_steps or steps_per_epoch))
    if output_dir:
        from zoo.hub import save_model

        step = ops.convert_to_numpy(optimizer.iterations)
        save_model(net, output_dir, extra=run_summary(config, step, steps_per_epoch, history_fit=history.history))
    return net, history.history


class DataEpoch(keras.callbacks.Callback):
    """Keeps the training batches' shuffle/augmentation epoch equal to fit's epoch (after a resume too)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        if self.batches.epoch != epoch:
            self.batches.set_epoch(epoch)


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of the epoch, evaluation included) to the epoch logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.start


def unpack(data):
    """``(images, labels, class_names)`` from a source object or an ``(images, labels)`` tuple."""
    if isinstance(data, tuple):
        images, labels = data
        return np.asarray(images), np.asarray(labels), [str(i) for i in range(int(np.max(labels)) + 1)]
    return data.images, data.labels, list(data.class_names)
