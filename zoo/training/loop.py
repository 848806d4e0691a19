"""One custom training loop for every family, under any ``tf.distribute`` strategy.

The loop (not ``model.fit``, which Keras 3.15 breaks under MultiWorkerMirroredStrategy) follows
the recipe in shared/research/keras-ecosystem.md §3b: model and optimizer built inside
``strategy.scope()``, per-example losses averaged with ``tf.nn.compute_average_loss``,
synchronized BatchNorm when there is more than one replica. It adds:

- the family's loss from the registry (ABN: ``L_per + L_att``), L2 weight decay added to the
  gradients as PyTorch's SGD does (the official recipes' ``--wd``), SGD with momentum, cosine
  (with linear warm-up) or step schedules;
- mixed precision (``"bfloat16"`` on CPU, ``"float16"`` with loss scaling on GPU);
- checkpoints every N steps and at epoch ends (``tf.train.CheckpointManager``; only the chief
  writes to the real directory), and ``resume`` that continues from the latest checkpoint
  mid-epoch with exactly the batches an uninterrupted run would see (see :mod:`zoo.data`);
- TensorBoard scalars, a Keras progress bar, and test-set evaluation at every epoch end.
"""

import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Optional

import keras
import tensorflow as tf

from zoo import data as zdata
from zoo import registry
from zoo.training.recipe import TrainConfig, dtype_policy, learning_rate_schedule, run_summary  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


def is_chief(strategy):
    """Whether this worker writes checkpoints and logs (always true outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


class Trainer:
    """Trains a zoo model on a data source with a custom loop under `strategy`.

    ``model``: an architecture name (``"abn_resnet20"``), or a callable returning a fresh or
    pretrained model (called inside the strategy scope and the mixed-precision policy).
    """

    def __init__(self, model, train_data, config: TrainConfig, test_data=None, strategy=None, build_kwargs=None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.train_data = train_data
        self.test_data = test_data
        self.num_classes = len(train_data.class_names)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by {replicas} replicas")
        self.steps_per_epoch = len(train_data) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(train_data)} training images is less than one batch of {config.batch_size}")
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)

        with self.strategy.scope(), dtype_policy(config.mixed_precision):
            if callable(model):
                self.model = model()
            else:
                kwargs = {"num_classes": self.num_classes, **(build_kwargs or {})}
                if replicas > 1:
                    kwargs.setdefault("sync_bn", True)
                self.model = registry.build(model, **kwargs)
            self.loss_fn = registry.get_spec(self.model.zoo_config["arch"]).loss
            self.optimizer = keras.optimizers.SGD(
                learning_rate_schedule(config, self.steps_per_epoch),
                momentum=config.momentum,
                nesterov=config.nesterov,
            )
            if config.mixed_precision == "float16":
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            self.train_loss = keras.metrics.Mean()
            self.train_acc = keras.metrics.Accuracy()
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        if not self.model.zoo_config.get("class_names"):
            self.model.zoo_config["class_names"] = list(train_data.class_names)
        self._setup_checkpoints()
        self._train_step = self._make_train_step()

    # -- checkpoints -----------------------------------------------------------------------
    def _setup_checkpoints(self):
        self.manager = None
        if not self.config.checkpoint_dir:
            return
        directory = self.config.checkpoint_dir
        self._scratch_dir = None
        if not is_chief(self.strategy):  # non-chief workers must save too (collectives), to a scratch dir
            directory = self._scratch_dir = tempfile.mkdtemp(prefix="zoo-worker-ckpt-")
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, self.config.keep_checkpoints)

    def restore(self):
        """Restore the latest checkpoint of `checkpoint_dir`; returns the step reached (0 if none)."""
        latest = tf.train.latest_checkpoint(self.config.checkpoint_dir) if self.config.checkpoint_dir else None
        if latest is None:
            return 0
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        step = int(self.optimizer.iterations.numpy())
        log.info("resumed from %s at step %d", latest, step)
        return step

    def save_checkpoint(self):
        if self.manager is not None:
            self.manager.save(checkpoint_number=int(self.optimizer.iterations.numpy()))

    # -- steps ---------------------------------------------------------------------------------
    def _make_train_step(self):
        model, optimizer, config = self.model, self.optimizer, self.config
        global_batch = config.batch_size
        # gradients are summed over replicas, so each adds its share of the decay term
        decay = config.weight_decay / self.strategy.num_replicas_in_sync

        def step_fn(images, labels):
            with tf.GradientTape() as tape:
                outputs = model(images, training=True)
                per_example = self.loss_fn(labels, outputs, label_smoothing=config.label_smoothing,
                                           **config.loss_kwargs)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                scaled = optimizer.scale_loss(loss) if config.mixed_precision == "float16" else loss
            variables = model.trainable_variables
            grads = tape.gradient(scaled, variables)
            if decay:
                grads = [g + decay * tf.cast(v, g.dtype) for g, v in zip(grads, variables)]
            optimizer.apply_gradients(zip(grads, variables))
            true = labels if len(labels.shape) == 1 else tf.argmax(labels, axis=-1)
            self.train_loss.update_state(tf.reduce_mean(per_example))
            self.train_acc.update_state(true, tf.argmax(outputs["logits"], axis=-1))
            return loss

        @tf.function
        def train_step(iterator):
            images, labels = next(iterator)
            per_replica = self.strategy.run(step_fn, args=(images, labels))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        return train_step

    def _distributed_epoch(self, epoch, skip_steps):
        config = self.config

        def dataset_fn(context):
            per_replica = context.get_per_replica_batch_size(config.batch_size)
            skip = skip_steps * config.batch_size // context.num_input_pipelines
            return zdata.make_dataset(
                self.train_data, per_replica, True, config.seed, epoch, skip, config.augment, context
            )

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    # -- the loop --------------------------------------------------------------------------
    def fit(self, resume=False):
        """Train to `config.epochs` (or `max_steps`); returns the history (list of epoch dicts)."""
        config = self.config
        step = self.restore() if resume else 0
        if not resume and self.manager is not None and self.manager.latest_checkpoint:
            raise FileExistsError(
                f"{config.checkpoint_dir} already holds checkpoints: pass resume=True (--resume) to "
                "continue that run, or choose an empty checkpoint directory"
            )
        writer = tf.summary.create_file_writer(config.log_dir) if config.log_dir and is_chief(self.strategy) else None
        history = self.load_history() if resume else []
        history = [record for record in history if record["step"] <= step]
        while step < self.total_steps:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            iterator = self._distributed_epoch(epoch, in_epoch)
            steps_this_epoch = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
            bar = None
            if config.progress:
                bar = keras.utils.Progbar(steps_this_epoch, stateful_metrics=["loss", "acc", "lr"])
            self.train_loss.reset_state()
            self.train_acc.reset_state()
            first_step = step
            start = time.perf_counter()
            for in_epoch in range(in_epoch, steps_this_epoch):
                loss = self._train_step(iterator)
                step += 1
                if not math.isfinite(float(loss)):
                    raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower the learning rate")
                if self.manager is not None and step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if writer is not None and step % config.log_every == 0:
                    scalars = {"train/loss": self.train_loss.result(), "train/lr": self.current_lr()}
                    self._log_scalars(writer, step, scalars)
                if bar is not None:
                    bar.update(in_epoch + 1, [("loss", float(self.train_loss.result())),
                                              ("acc", float(self.train_acc.result())), ("lr", self.current_lr())])
            record = {
                "epoch": epoch + 1,
                "first_step": first_step,  # records of a resumed run cover disjoint step ranges
                "step": step,
                "train_loss": float(self.train_loss.result()),
                "train_accuracy": float(self.train_acc.result()),
                "seconds": time.perf_counter() - start,
            }
            if self.test_data is not None and (step % self.steps_per_epoch == 0 or step == self.total_steps):
                from zoo.evaluation import evaluate

                metrics = evaluate(self.model, self.test_data, config.eval_batch_size, progress=False)
                record.update({f"test_{k}": v for k, v in metrics.items()})
            history.append(record)
            self.save_checkpoint()
            self.save_history(history)
            if writer is not None:
                self._log_scalars(writer, step, {f"epoch/{k}": v for k, v in record.items() if k != "epoch"})
            log.info("epoch %s", json.dumps(record))
            if config.progress:
                print(json.dumps(record), flush=True)
        if getattr(self, "_scratch_dir", None):
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
        return history

    HISTORY_FILE = "history.json"

    def run_summary(self, history):
        """What a saved model records of its training (weight cards count epochs from it)."""
        return run_summary(self.config, self.optimizer.iterations.numpy(), self.steps_per_epoch, history=history)

    def load_history(self):
        """Epoch records of the run so far (kept next to the checkpoints, so resumes extend it)."""
        path = os.path.join(self.config.checkpoint_dir or "", self.HISTORY_FILE)
        if not self.config.checkpoint_dir or not os.path.exists(path):
            return []
        with open(path) as f:
            return json.load(f)

    def save_history(self, history):
        if self.manager is None:
            return
        path = os.path.join(self.manager.directory, self.HISTORY_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(history, f, indent=1)
        os.replace(path + ".tmp", path)

    def current_lr(self):
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

    @staticmethod
    def _log_scalars(writer, step, scalars):
        with writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, float(value))
        writer.flush()


def train(model, train_data, config: Optional[TrainConfig] = None, test_data=None, strategy=None, resume=False,
          output_dir=None, build_kwargs=None):
    """Train `model` (an architecture name or a model factory) and optionally save it.

    Returns ``(model, history)``; with `output_dir`, the trained model is written there with
    :func:`zoo.hub.save_model` (loadable by ``zoo.load(output_dir)``).
    """
    trainer = Trainer(model, train_data, config or TrainConfig(), test_data, strategy, build_kwargs)
    history = trainer.fit(resume=resume)
    if output_dir and is_chief(trainer.strategy):
        from zoo.hub import save_model

        save_model(trainer.model, output_dir, extra=trainer.run_summary(history))
    return trainer.model, history
