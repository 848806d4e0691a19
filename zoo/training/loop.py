"""One custom training loop for every family, under any ``tf.distribute`` strategy.

The loop (not ``model.fit``, which Keras 3.15 breaks under MultiWorkerMirroredStrategy) follows
the known-good recipe for Keras 3.15 under tf.distribute: model and optimizer built inside
``strategy.scope()``, each replica differentiating its share of the global-batch mean
(:meth:`zoo.training.core.TrainingCore.objective`), synchronized BatchNorm when there is more
than one replica. It adds:

- the training core (:mod:`zoo.training.core`: the family loss through the model's task, loss
  schedules, L2 weight decay as PyTorch's SGD applies it, metrics), SGD with momentum, cosine
  (with linear warm-up) or step schedules;
- mixed precision (``"bfloat16"`` on CPU, ``"float16"`` with loss scaling on GPU);
- XLA on request (``jit_compile=True``: the forward and backward pass of one replica compiled,
  the update outside; off by default, slower on CPUs, see the README);
- checkpoints every N steps and at epoch ends (``tf.train.CheckpointManager``; only the chief
  writes to the real directory), and ``resume`` that continues from the latest checkpoint
  mid-epoch with exactly the batches an uninterrupted run would see (see :mod:`zoo.data`);
- TensorBoard scalars, a Keras progress bar, and test-set evaluation at every epoch end.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Optional

import keras
import tensorflow as tf

from zoo import data as zdata
from zoo.errors import DamagedFile, InvalidInput
from zoo.training import setup
from zoo.training.core import (
    BestEpoch,
    TrainingCore,
    check_finite_loss,
    check_finite_weights,
    scalar_metrics,
    validation_score,
)
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


def remove_interrupted_writes(directory):
    """Delete what a killed checkpoint write leaves (TensorFlow's ``*_temp`` folders and
    ``checkpoint.tmp*`` files), so it is neither restored nor left to accumulate."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.endswith("_temp") or name.startswith("checkpoint.tmp") or name.endswith(".json.tmp"):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


class Trainer:
    """Trains a zoo model on a data source with a custom loop under `strategy`.

    ``model``: an architecture name (``"abn_resnet20"``), or a callable returning a fresh or
    pretrained model (called inside the strategy scope and the mixed-precision policy).
    """

    def __init__(self, model, train_data, config: TrainConfig, test_data=None, strategy=None, build_kwargs=None,
                 val_data=None):
        self.config = config = setup.resolved(config)
        self.val_data = val_data
        setup.check_keep_best(config, val_data)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.train_data = train_data
        self.test_data = test_data
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by {replicas} replicas")
        if config.jit_compile and replicas > 1:
            raise InvalidInput(f"jit_compile (XLA) needs one replica, the strategy has {replicas}: synchronized "
                               "batch norm and the gradient all-reduce do not compile; drop --jit-compile or train "
                               "on one device")
        self.steps_per_epoch = setup.steps_per_epoch(len(train_data), config.batch_size)
        self.total_steps = setup.total_steps(config, self.steps_per_epoch)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)

        with self.strategy.scope(), dtype_policy(config.mixed_precision):
            extra = {"sync_bn": True} if replicas > 1 else {}
            self.model = setup.make_model(model, train_data, {**extra, **(build_kwargs or {})})
            self.optimizer = setup.make_optimizer(config, self.steps_per_epoch)
            self.optimizer.build(self.model.trainable_variables)
            self.core = TrainingCore(self.model, config, self.steps_per_epoch, replicas)
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        setup.check_data(self.model, train_data, test_data, val_data)
        self.best = BestEpoch(self.model)
        self._setup_checkpoints()
        self._train_step = self._make_train_step()

    # -- checkpoints -----------------------------------------------------------------------
    def _setup_checkpoints(self):
        self.manager = None
        if not self.config.checkpoint_dir:
            return
        directory = self.config.checkpoint_dir
        remove_interrupted_writes(directory)
        self._scratch_dir = None
        if not is_chief(self.strategy):  # non-chief workers must save too (collectives), to a scratch dir
            directory = self._scratch_dir = tempfile.mkdtemp(prefix="zoo-worker-ckpt-")
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, self.config.keep_checkpoints)

    def restore(self):
        """Restore the newest readable checkpoint of `checkpoint_dir` (a corrupt newest one is
        skipped with a warning); returns the step reached (0 if none)."""
        if self.manager is None:
            return 0
        candidates = list(reversed(self.manager.checkpoints))
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError) as err:
                log.warning("checkpoint %s is unreadable (%s); trying the previous one", path,
                            str(err).splitlines()[0] if str(err) else type(err).__name__)
                print(f"warning: checkpoint {path} is unreadable; falling back to the previous one", file=sys.stderr)
                continue
            step = int(self.optimizer.iterations.numpy())
            log.info("resumed from %s at step %d", path, step)
            return step
        if candidates:
            raise DamagedFile(f"no readable checkpoint in {self.config.checkpoint_dir} (tried {len(candidates)}): "
                              "they are damaged; start a new --checkpoint-dir (these are left as they are)")
        setup.note_nothing_to_resume(self.config.checkpoint_dir)
        return 0

    def save_checkpoint(self):
        if self.manager is not None:
            step = int(self.optimizer.iterations.numpy())
            check_finite_weights(self.model.variables, step, self.config)
            self.manager.save(checkpoint_number=int(self.optimizer.iterations.numpy()))

    # -- steps ---------------------------------------------------------------------------------
    def _make_train_step(self):
        model, optimizer, core = self.model, self.optimizer, self.core
        global_batch = self.config.batch_size

        def gradients(images, labels):
            with tf.GradientTape() as tape:
                outputs = core.forward(images, labels, training=True)
                losses = core.losses(labels, outputs, optimizer.iterations)
                loss = core.objective(losses["loss"], global_batch)
                scaled = optimizer.scale_loss(loss)  # float16: the decay term is scaled with the loss
            return loss, tape.gradient(scaled, model.trainable_variables), outputs, losses

        if self.config.jit_compile:  # XLA for the forward and backward pass; the update stays outside
            gradients = tf.function(gradients, jit_compile=True)

        def step_fn(images, labels):
            loss, grads, outputs, losses = gradients(images, labels)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            core.update_metrics(labels, outputs, losses)
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
        if not resume and self.manager is not None and self.manager.latest_checkpoint:
            raise FileExistsError(
                f"{config.checkpoint_dir} already holds checkpoints: pass resume=True (--resume) to "
                "continue that run, or choose an empty checkpoint directory"
            )
        setup.check_config(config, resume)
        if is_chief(self.strategy):
            setup.check_resume_config(config.checkpoint_dir, config, resume, self.model, self.train_data)
        step = self.restore() if resume else 0
        writer = tf.summary.create_file_writer(config.log_dir) if config.log_dir and is_chief(self.strategy) else None
        history = self.load_history() if resume else []
        history = [record for record in history if record["step"] <= step]
        while step < self.total_steps:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            iterator = self._distributed_epoch(epoch, in_epoch)
            steps_this_epoch = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
            bar = None
            if config.progress:
                bar = keras.utils.Progbar(steps_this_epoch, stateful_metrics=["loss", "accuracy", "lr"])
            self.core.reset_metrics()
            first_step = step
            start = time.perf_counter()
            for in_epoch in range(in_epoch, steps_this_epoch):
                loss = self._train_step(iterator)
                step += 1
                check_finite_loss(loss, step, config, self.checkpoint_note())
                if self.manager is not None and step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if writer is not None and step % config.log_every == 0:
                    scalars = {"train/loss": self.core.loss_metric.result(), "train/lr": self.current_lr()}
                    self._log_scalars(writer, step, scalars)
                if bar is not None:
                    metrics = self.core.results()
                    bar.update(in_epoch + 1, [("loss", metrics["loss"]), ("accuracy", metrics["accuracy"]),
                                              ("lr", self.current_lr())])
            record = {
                "epoch": epoch + 1,
                "first_step": first_step,  # records of a resumed run cover disjoint step ranges
                "step": step,
                **{f"train_{k}": v for k, v in self.core.results().items()},
                "seconds": time.perf_counter() - start,
            }
            epoch_end = step % self.steps_per_epoch == 0 or step == self.total_steps
            evaluated = {}
            for prefix, data in (("val_", self.val_data), ("test_", self.test_data)):
                if data is not None and epoch_end:
                    from zoo.evaluation import evaluate

                    evaluated[prefix] = evaluate(self.model, data, config.eval_batch_size,
                                                 progress=True if config.progress else "lines")
                    record.update(scalar_metrics(evaluated[prefix], prefix))
            if config.keep_best and epoch_end:
                record["best_so_far"] = self.best.update(epoch + 1, validation_score(evaluated["val_"]))
            history.append(record)
            self.save_checkpoint()
            self.save_history(history)
            if writer is not None:
                self._log_scalars(writer, step, {f"epoch/{k}": v for k, v in record.items() if k != "epoch"})
            print(json.dumps(record), flush=True)  # one line per epoch, with or without the progress bar
        if getattr(self, "_scratch_dir", None):
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
        if config.keep_best:
            self.restore_best(history)
        return history

    def checkpoint_note(self):
        """Where the last good checkpoint is, for a message about a stopped run."""
        latest = self.manager.latest_checkpoint if self.manager is not None else None
        return f" (the last good checkpoint, {latest}, is kept)" if latest else ""

    def restore_best(self, history):
        """Put the best validation epoch's weights back (after a resume: re-evaluated if needed)."""
        if self.best.weights is None:  # a resumed run whose best epoch was before the resume
            print("note: the best epoch was before the resume; keeping the last epoch's weights", file=sys.stderr)
            return
        epoch = self.best.restore()
        print(json.dumps({"kept_epoch": epoch, "val_score": self.best.score}), flush=True)

    HISTORY_FILE = "history.json"

    def run_summary(self, history):
        """What a saved model records of its training (weight cards count epochs from it)."""
        summary = run_summary(self.config, self.optimizer.iterations.numpy(), self.steps_per_epoch,
                              self.core.objective_name, history=history)
        if self.config.keep_best and self.best.epoch is not None:
            summary["kept_epoch"] = self.best.epoch
        return summary

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
          output_dir=None, build_kwargs=None, val_data=None, force=False):
    """Train `model` (an architecture name or a model factory) and optionally save it.

    Returns ``(model, history)``; with `output_dir`, the trained model is written there with
    :func:`zoo.hub.save_model` (loadable by ``zoo.load(output_dir)``). `output_dir` is checked
    before training (:func:`zoo.hub.check_model_output`: an existing model is replaced only with
    `force`, any other non-empty folder or a file never).
    """
    from zoo.hub import check_model_output, save_model

    config = config or TrainConfig()
    setup.check_config(config, resume)
    if output_dir:
        check_model_output(output_dir, force)
    trainer = Trainer(model, train_data, config or TrainConfig(), test_data, strategy, build_kwargs, val_data)
    history = trainer.fit(resume=resume)
    if output_dir and is_chief(trainer.strategy):
        save_model(trainer.model, output_dir, extra=trainer.run_summary(history), force=force)
    return trainer.model, history
