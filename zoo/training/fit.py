"""Backend-agnostic training with ``model.fit`` (JAX, PyTorch or TensorFlow).

For machines without TensorFlow (GPU machines with ``KERAS_BACKEND=jax``). It drives the same
training core as the tf.distribute loop (:mod:`zoo.training.core`: loss by task, loss schedules,
weight decay, metrics) with the same recipe (:class:`zoo.training.recipe.TrainConfig`), optimizer,
data order and crop/flip parameters (:mod:`zoo.data.augment`), so one step of either engine from
the same weights and batch gives the same update (tested). Checkpoints and resume use
``keras.callbacks.BackupAndRestore``, logs a CSV file (and TensorBoard where TensorFlow is
installed). What it does not do: tf.distribute (use :mod:`zoo.training.loop`), tensorflow-datasets
(folders are read with Pillow), and bit-exact resumes (a resume restarts the interrupted epoch,
with that epoch's data order, so the steps it had done run twice).
"""

import json
import math
import os
import time

import keras
import numpy as np
from keras import ops

from zoo.data.augment import batch_augmentation, crop_flip_batch, crop_flip_params, epoch_order
from zoo.data.sources import ArraySource
from zoo.training import setup
from zoo.training.core import BestEpoch, TrainingCore, check_finite_loss, check_finite_weights, validation_score
from zoo.training.recipe import AugmentConfig, TrainConfig, dtype_policy, run_summary


class ArrayBatches(keras.utils.PyDataset):
    """Batches ``(float32 images in [0, 255], labels)`` of a source with random access (arrays,
    ``.npz``, image folders).

    Training batches follow the epoch's ``(seed, epoch)`` order and crop/flip parameters
    (:mod:`zoo.data.augment`, the same numbers as the tf.data pipeline of the loop engine), then
    the optional Keras batch augmentation; the last partial batch is dropped. Evaluation keeps the
    order and every image.
    """

    def __init__(self, source, batch_size, training=False, seed=0, augment=None, first_epoch=0,
                 labels_in_inputs=False):
        super().__init__()
        self.source = source
        self.labels_in_inputs = labels_in_inputs  # x = {"images", "labels"} for a core that needs them
        self.batch_size, self.training, self.seed = batch_size, training, seed
        self.augment = augment or AugmentConfig()
        self.mix = None
        if training:
            self.mix = batch_augmentation(self.augment, len(source.class_names), seed,
                                          getattr(source, "task", "multiclass") == "multilabel")
        self.set_epoch(first_epoch)

    def __len__(self):
        if self.training:
            return len(self.source) // self.batch_size
        return math.ceil(len(self.source) / self.batch_size)

    def __getitem__(self, index):
        positions = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, len(self.source)))
        rows = self.order[positions]
        images, labels = self.source.images_at(rows), self.source.labels[rows]
        if self.training:
            dy, dx, flip = (p[positions] for p in self.params)
            images = crop_flip_batch(images, dy, dx, flip, self.augment.crop_padding)
            if self.mix is not None:
                images, labels = (ops.convert_to_numpy(t) for t in self.mix(images, labels))
        if self.labels_in_inputs:
            return {"images": images.astype("float32"), "labels": labels}, labels
        return images.astype("float32"), labels

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.order = epoch_order(len(self.source), self.seed, epoch, self.training)
        self.params = crop_flip_params(len(self.source), self.seed, epoch, self.augment)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)


class FitModel(keras.Model):
    """Wraps a zoo model for ``model.fit``: the training core's objective and metrics.

    ``loss_step`` counts optimizer steps inside the (possibly stateless, jitted) train step, for
    the core's loss schedules.
    """

    def __init__(self, model, config, steps_per_epoch, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.core = TrainingCore(model, config, steps_per_epoch)
        self.batch_size = config.batch_size
        self.loss_step = keras.Variable(0, dtype="int32", trainable=False, name="loss_step")

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):  # the core's forward pass needs the labels
            return self.core.forward(inputs["images"], inputs["labels"], training=training)
        return self.model(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = self.core.losses(y, y_pred, self.loss_step, training=training)
        if training:
            self.loss_step.assign_add(1)
        self.core.update_loss_metrics(y, y_pred, losses)
        return self.core.objective(losses["loss"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.core.update_task_metrics(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return self.core.metrics


def fit(model, train_data, config: TrainConfig, test_data=None, build_kwargs=None, output_dir=None, resume=False,
        val_data=None, force=False):
    """Train `model` (architecture name or factory) with ``model.fit`` on a data source (or an
    ``(images, labels)`` tuple); returns ``(model, history_dict)``.

    Keras evaluates one data set per epoch (``val_*`` in the history): `val_data` if given (and
    then ``keep_best`` may pick the best epoch on it), else `test_data`.

    Checkpoints go to ``config.checkpoint_dir`` every ``config.checkpoint_every`` steps
    (BackupAndRestore); without ``resume`` an existing backup there is an error. `output_dir` is
    checked before training, as by the loop engine (an existing model is replaced only with `force`).
    A non-finite loss stops the run (:class:`zoo.errors.TrainingDiverged`) with nothing saved.
    """
    from zoo.hub import check_model_output, save_model

    config = setup.resolved(config)
    setup.check_engine_options("fit", config)
    setup.check_config(config, resume)
    if output_dir:
        check_model_output(output_dir, force)
    train_data, test_data, val_data = as_source(train_data), as_source(test_data), as_source(val_data)
    setup.check_keep_best(config, val_data)
    per_epoch = setup.steps_per_epoch(len(train_data), config.batch_size)
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(config.mixed_precision):
        net = setup.make_model(model, train_data, build_kwargs)
    setup.check_data(net, train_data, test_data, val_data)
    trainer = FitModel(net, config, per_epoch)
    optimizer = setup.make_optimizer(config, per_epoch)
    trainer.compile(optimizer=optimizer, jit_compile=setup.fit_jit_compile(config))
    labels_in_inputs = trainer.core.needs_labels
    batches = ArrayBatches(train_data, config.batch_size, True, config.seed, config.augment,
                           labels_in_inputs=labels_in_inputs)
    trainer(batches[0][0])  # built before fit (BackupAndRestore needs it)
    callbacks = [StopOnNonFinite(config), DataEpoch(batches), EpochTimer(),
                 StopAtStep(setup.total_steps(config, per_epoch), per_epoch)]
    if config.checkpoint_dir:
        os.makedirs(config.checkpoint_dir, exist_ok=True)
        backup = os.path.join(config.checkpoint_dir, "backup")
        if os.path.isdir(backup) and os.listdir(backup) and not resume:
            raise FileExistsError(f"{backup} holds a backup: pass resume=True (--resume) or use another directory")
        if resume and not (os.path.isdir(backup) and os.listdir(backup)):
            setup.note_nothing_to_resume(config.checkpoint_dir)
        setup.check_resume_config(config.checkpoint_dir, config, resume, net, train_data)
        callbacks.append(FiniteBackupAndRestore(config, backup, save_freq=config.checkpoint_every,
                                                delete_checkpoint=False))
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(config.checkpoint_dir, "log.csv"), append=resume))
    if config.log_dir:
        callbacks.append(keras.callbacks.TensorBoard(config.log_dir, update_freq=config.log_every))
    validation = None
    if (val_data or test_data) is not None:
        validation = ArrayBatches(val_data or test_data, config.eval_batch_size, labels_in_inputs=labels_in_inputs)
        print(f"each epoch ends with an evaluation on {len(val_data or test_data)} "
              f"{'validation' if val_data else 'test'} images", flush=True)
    best = KeepBest(net) if config.keep_best else None
    if best is not None:
        callbacks.append(best)
    history = trainer.fit(batches, epochs=setup.epochs_to_run(config, per_epoch), validation_data=validation,
                          callbacks=callbacks, verbose=1 if config.progress else 2,
                          shuffle=False)  # the batches are already in the epoch's order (Keras would reorder them)
    extra = {}
    if best is not None:
        extra["kept_epoch"] = best.best.restore()
        print(json.dumps({"kept_epoch": extra["kept_epoch"], "val_score": best.best.score}), flush=True)
    if output_dir:
        step = ops.convert_to_numpy(optimizer.iterations)
        summary = run_summary(config, step, per_epoch, trainer.core.objective_name, history_fit=history.history)
        save_model(net, output_dir, extra={**summary, **extra}, force=force)
    return net, history.history


class StopOnNonFinite(keras.callbacks.Callback):
    """The fit engine's side of :func:`zoo.training.core.check_finite_loss`: the first batch whose
    loss is not finite stops the run with :class:`zoo.errors.TrainingDiverged` (first in the
    callback list, so no later callback saves anything from that step)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.note = f" (the last good checkpoint in {config.checkpoint_dir} is kept)" if config.checkpoint_dir else ""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            step = self.epoch * self.params.get("steps", 0) + batch + 1
            check_finite_loss(logs["loss"], step, self.config, self.note)


class FiniteBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that never writes a backup from non-finite weights
    (:func:`zoo.training.core.check_finite_weights`), so the last backup is a good one, and that
    also backs up at every epoch end (Keras does only every `save_freq` steps), so a resume after a
    finished epoch starts the next one instead of running the finished one again."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)  # the next epoch becomes the one a resume starts
        if self.save_freq != "epoch":
            self._save_model()

    def _save_model(self):
        check_finite_weights(self.model.variables, "this one", self.config)
        super()._save_model()


class KeepBest(keras.callbacks.Callback):
    """The fit engine's side of :class:`zoo.training.core.BestEpoch`: scores each epoch by its
    validation accuracy."""

    def __init__(self, model):
        super().__init__()
        self.best = BestEpoch(model)

    def on_epoch_end(self, epoch, logs=None):
        self.best.update(epoch + 1, validation_score(logs or {}))


class StopAtStep(keras.callbacks.Callback):
    """Stops ``model.fit`` after `total` optimizer steps (``max_steps`` inside an epoch)."""

    def __init__(self, total, per_epoch):
        super().__init__()
        self.total, self.per_epoch = total, per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.per_epoch + batch + 1 >= self.total:
            self.model.stop_training = True


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


def as_source(data):
    """A data source from a source object or an ``(images, labels)`` tuple (None stays None)."""
    if data is None or hasattr(data, "images_at"):
        return data
    if isinstance(data, tuple):
        return ArraySource(*data)
    raise ValueError(f"the fit engine reads arrays, .npz files and image folders, not {type(data).__name__} "
                     "(tensorflow-datasets need the loop engine: --engine loop)")
