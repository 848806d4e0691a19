"""The training core shared by both engines (backend-agnostic: keras.ops only).

What a train step computes, whichever engine drives it (:mod:`zoo.training.loop` under
``tf.distribute``, :mod:`zoo.training.fit` with ``model.fit`` on any backend):

- the family's per-example loss through the model's task (:mod:`zoo.tasks`), with the recipe's
  static loss arguments and the family's *loss schedules*: loss arguments that depend on the
  (fractional) epoch, e.g. a term ramped in over the first epochs (hook for loss-based attention);
- the objective to differentiate: the mean over the *global* batch plus the L2 weight decay
  ``wd/2 * sum ||w||^2`` as a loss term, so that its gradient ``wd * w`` is PyTorch's coupled decay
  and it is scaled, and unscaled, together with the loss under float16 loss scaling; with R
  replicas each adds ``1/R`` of it, because the replicas' gradients are summed;
- the metrics: the family objective (``loss``), the task loss of ``logits`` alone
  (``logits_loss``, on the scale of ``zoo evaluate``'s loss) and the task's accuracy;
- the forward pass (:meth:`TrainingCore.forward`): for a family whose loss needs the gradient of
  the class score with respect to an inner feature map (Sharpen Focus' Grad-CAM in training),
  the model is split at that tap and :mod:`zoo.training.autodiff` adds ``tap_features`` and
  ``tap_gradient`` to the outputs, differentiable, on every backend.
"""

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from zoo import registry, tasks
from zoo.errors import TrainingDiverged
from zoo.training import autodiff


@dataclasses.dataclass
class LossSchedule:
    """A loss argument that follows the epoch: linear from `start` to `end` over `epochs`
    (then constant); ``value(epoch)`` takes a float tensor (epochs may be fractional)."""

    start: float
    end: float
    epochs: float

    def value(self, epoch):
        progress = ops.clip(ops.cast(epoch, "float32") / max(float(self.epochs), 1e-9), 0.0, 1.0)
        return self.start + (self.end - self.start) * progress


def tap_output(model, name):
    """The symbolic output of layer `name` inside `model`'s graph. For a nested model (a
    ``keras.applications`` backbone declared as a tap) ``.output`` is its own graph's output, not
    connected to `model`'s input: the node of its call that belongs to `model`'s graph is used
    (Keras keys a graph's nodes ``<id(layer)>_ib-<index>``; cutting models adds other nodes)."""
    layer = model.get_layer(name)
    if not isinstance(layer, keras.Model):
        return layer.output
    for index, node in enumerate(layer._inbound_nodes):
        if f"{id(layer)}_ib-{index}" in model._nodes:
            outputs = node.output_tensors
            return outputs[0] if len(outputs) == 1 else outputs
    raise ValueError(f"layer {name!r} is not called inside {model.name}")


class TrainingCore:
    """Loss, weight decay and metrics of one model under one recipe.

    `steps_per_epoch` turns optimizer steps into the fractional epoch the loss schedules see.
    """

    def __init__(self, model, config, steps_per_epoch, num_replicas=1):
        self.model = model
        self.config = config
        self.spec = registry.get_spec(model.zoo_config["arch"])
        self.task = tasks.task_of(model)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.num_replicas = int(num_replicas)
        self.loss_kwargs = {"label_smoothing": config.label_smoothing, **config.loss_kwargs}
        self.schedules = {name: schedule if isinstance(schedule, LossSchedule) else LossSchedule(**schedule)
                          for name, schedule in {**self.spec.loss_schedules, **config.loss_schedules}.items()}
        self.split = self.split_at_tap(model, self.spec.feature_gradient)
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.logits_loss_metric = keras.metrics.Mean(name="logits_loss")
        self.task_metrics = self.task.train_metrics()

    @staticmethod
    def split_at_tap(model, tap):
        """``(trunk, head)``: the model cut at layer `tap` (head takes ``[images, features]``)."""
        if tap is None:
            return None
        if tap == "gradcam":
            tap = registry.feature_info(model).gradcam_layer
        features = tap_output(model, tap)
        return keras.Model(model.input, features), keras.Model([model.input, features], model.output)

    @property
    def needs_labels(self):
        """Whether :meth:`forward` needs the labels (the score's class)."""
        return self.split is not None

    def forward(self, images, labels=None, training=True):
        """The model's outputs, plus ``tap_features`` / ``tap_gradient`` where the loss needs them."""
        if self.split is None:
            return self.model(images, training=training)
        trunk, head = self.split
        images = ops.convert_to_tensor(images)
        features = trunk(images, training=training)

        def score(outputs):
            return class_score(outputs["logits"], labels)

        outputs, gradient = autodiff.outputs_and_gradient(lambda f: head([images, f], training=training), features,
                                                          score, self.model.variables)
        return {**outputs, "tap_features": features, "tap_gradient": gradient}

    @property
    def metrics(self):
        return [self.loss_metric, self.logits_loss_metric, *self.task_metrics]

    def loss_arguments(self, step):
        """The loss's keyword arguments at optimizer step `step` (scheduled ones computed)."""
        epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        return {**self.loss_kwargs, **{name: s.value(epoch) for name, s in self.schedules.items()}}

    def per_example_loss(self, labels, outputs, step):
        """The family loss of each example (B,) at optimizer step `step`."""
        return self.spec.loss(labels, outputs, self.task, **self.loss_arguments(step))

    def decay_penalty(self):
        """``wd/2 * sum ||w||^2`` over the trainable weights (0 without decay)."""
        if not self.config.weight_decay:
            return 0.0
        squares = [ops.sum(ops.square(ops.cast(v, "float32"))) for v in self.model.trainable_weights]
        return 0.5 * self.config.weight_decay * ops.sum(ops.stack(squares))

    def objective(self, per_example, global_batch_size=None):
        """What this replica differentiates: its share of the global-batch mean (the batch mean
        when `global_batch_size` is None) plus its share of the decay (replicas' gradients are summed)."""
        per_example = ops.cast(per_example, "float32")
        if global_batch_size is None:
            data = ops.mean(per_example)
        else:
            data = ops.sum(per_example) / float(global_batch_size)
        return data + self.decay_penalty() / self.num_replicas

    def update_metrics(self, labels, outputs, per_example):
        self.update_loss_metrics(labels, outputs, per_example)
        self.update_task_metrics(labels, outputs)

    def update_loss_metrics(self, labels, outputs, per_example):
        """The objective and the task loss of ``logits`` (``model.fit`` calls this where the loss
        is computed: its metric step cannot read the step counter under JAX)."""
        self.loss_metric.update_state(ops.mean(per_example))
        self.logits_loss_metric.update_state(ops.mean(self.task.loss(labels, outputs["logits"])))

    def update_task_metrics(self, labels, outputs):
        self.task.update_train_metrics(self.task_metrics, labels, outputs["logits"])

    def results(self):
        return {m.name: float(m.result()) for m in self.metrics}

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()


def class_score(logits, labels):
    """Sum over the batch of each image's score for its labelled class (integer labels) or of the
    label-weighted scores (one-hot, mixed or multi-hot labels)."""
    logits = ops.cast(logits, "float32")
    if len(labels.shape) == 1:
        labels = ops.one_hot(ops.cast(labels, "int32"), logits.shape[-1])
    return ops.sum(logits * ops.cast(labels, "float32"))


def scalar_metrics(metrics, prefix):
    """The number-valued entries of an evaluation result, prefixed (epoch records, logs)."""
    return {f"{prefix}{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def validation_score(metrics):
    """The number `keep_best` maximises: top-1 or mean attribute accuracy of a :func:`zoo.evaluate`
    result, or the fit engine's ``val_accuracy`` (the same numbers, as Keras metrics)."""
    for key in ("top1", "mean_accuracy", "val_accuracy"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    raise ValueError(f"no validation accuracy among {sorted(metrics)}")


class BestEpoch:
    """Keeps the weights of the epoch with the best *validation* score (``keep_best``); the
    caller restores them at the end. Selection never looks at the test split."""

    def __init__(self, model):
        self.model = model
        self.score = None
        self.epoch = None
        self.weights = None

    def update(self, epoch, score):
        """Remember the weights if `score` beats the best so far; returns whether it did."""
        if self.score is not None and score <= self.score:
            return False
        self.score, self.epoch, self.weights = score, epoch, [ops.convert_to_numpy(w) for w in self.model.weights]
        return True

    def restore(self):
        if self.weights is not None:
            for variable, value in zip(self.model.weights, self.weights):
                variable.assign(value)
        return self.epoch


def check_finite_loss(loss, step, config, checkpoint_note=""):
    """Stop a run whose loss is NaN or infinite (both engines): raise :class:`TrainingDiverged`
    with what to change. Nothing is saved as trained; the checkpoints written so far were
    written from finite weights (:func:`check_finite_weights`) and stay."""
    loss = float(loss)
    if math.isfinite(loss):
        return
    raise TrainingDiverged(
        f"the training loss became {loss} at step {step}; nothing was saved as trained{checkpoint_note}. "
        f"Lower the learning rate (--lr {config.lr:g} now, try {config.lr / 10:g}), add a warm-up "
        "(--warmup-epochs 1), or check the data for broken images or labels")


def check_finite_weights(variables, step, config):
    """Refuse to checkpoint weights that are no longer finite (the update after the last finite
    loss can be the one that overflowed), so the last checkpoint is always a good one."""
    for variable in variables:
        if not np.isfinite(ops.convert_to_numpy(variable)).all():
            raise TrainingDiverged(
                f"the weights became non-finite ({variable.path}) by step {step}; no checkpoint was written from "
                f"them and nothing was saved as trained. Lower the learning rate (--lr {config.lr:g} now)")
