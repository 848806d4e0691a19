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
- the objective (``TrainConfig.objective``, a :class:`zoo.registry.Objective` such as Sharpen
  Focus): terms added to any architecture's loss, each logged as a metric;
- the forward pass (:meth:`TrainingCore.forward`): where the loss or the objective reads feature
  maps and class-score gradients from inside the step (a :class:`zoo.registry.GradientRequest`:
  Grad-CAM in training), :class:`zoo.gradcam.TapGradients` adds them to the outputs, on every
  backend.
"""

import dataclasses
import inspect
import math

import keras
import numpy as np
from keras import ops

from zoo import inference, registry, tasks
from zoo.errors import InvalidInput, TrainingDiverged
from zoo.gradcam import TapGradients

SCHEDULE_SHAPES = ("linear", "sigmoid_rampup")
SCHEDULE_UNITS = ("step", "epoch")


@dataclasses.dataclass
class LossSchedule:
    """A loss argument that follows the epoch e, from `start` to `end` over `epochs`, then `end`:

    - ``shape="linear"``: ``start + (end - start) * p`` with ``p = min(e / epochs, 1)``;
    - ``shape="sigmoid_rampup"`` (Laine & Aila 2017; loss-based attention's patch-loss weight,
      Shi et al. 2021): ``start + (end - start) * exp(-5 (1 - p)^2)`` for ``e > 0``, `start` at
      ``e = 0`` (so with ``per="epoch"`` the first epoch trains at `start`);
    - ``per="step"``: e is fractional (changes every step); ``per="epoch"``: e is the epoch index
      (constant within an epoch, as in the LBA code).

    Plain data in the run config: ``{"start": 0, "end": 0.1, "epochs": 80, "shape":
    "sigmoid_rampup", "per": "epoch"}`` (CLI ``--loss-schedule KEY=JSON``). ``value(epoch)``
    takes a float tensor."""

    start: float
    end: float
    epochs: float
    shape: str = "linear"
    per: str = "step"

    def __post_init__(self):
        if self.shape not in SCHEDULE_SHAPES:
            raise InvalidInput(f"loss schedule shape must be one of {SCHEDULE_SHAPES}, got {self.shape!r}")
        if self.per not in SCHEDULE_UNITS:
            raise InvalidInput(f"loss schedule 'per' must be one of {SCHEDULE_UNITS}, got {self.per!r}")
        if not float(self.epochs) >= 0:
            raise InvalidInput(f"loss schedule epochs must be >= 0, got {self.epochs!r}")

    def value(self, epoch):
        epoch = ops.cast(epoch, "float32")
        if self.per == "epoch":
            epoch = ops.floor(epoch)
        progress = ops.clip(epoch / max(float(self.epochs), 1e-9), 0.0, 1.0)
        if self.shape == "sigmoid_rampup":
            progress = ops.where(epoch > 0, ops.exp(-5.0 * ops.square(1.0 - progress)), 0.0)
        return self.start + (self.end - self.start) * progress


class TrainingCore:
    """Loss, weight decay and metrics of one model under one recipe.

    `steps_per_epoch` turns optimizer steps into the fractional epoch the loss schedules see.
    The objective (``config.objective``, None: the architecture's default) adds its terms to the
    family loss; ``config.loss_kwargs`` go to whichever of the two takes them.
    """

    def __init__(self, model, config, steps_per_epoch, num_replicas=1):
        inference.check_trainable(model, "be trained")
        self.model = model
        self.config = config
        self.spec = registry.get_spec(model.zoo_config["arch"])
        self.task = tasks.task_of(model)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.num_replicas = int(num_replicas)
        self.objective_spec = chosen_objective(self.spec, config)
        self.loss_kwargs, self.objective_kwargs, self.request_options = split_loss_kwargs(
            self.spec, self.objective_spec, {"label_smoothing": config.label_smoothing, **config.loss_kwargs})
        self.schedules = loss_schedules(self.spec, config)
        self.tapped = self.tap_gradients(model)
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.logits_loss_metric = keras.metrics.Mean(name="logits_loss")
        parts = self.objective_spec.parts if self.objective_spec else ()
        self.part_metrics = {part: keras.metrics.Mean(name=part) for part in parts}
        self.task_metrics = self.task.train_metrics()

    def tap_gradients(self, model):
        """What the family loss and the objective read from inside the step (one request), or None."""
        requests = [self.spec.gradients]
        if self.objective_spec is not None and self.objective_spec.gradients is not None:
            requests.append(self.objective_spec.gradients(model, **self.request_options))
        requests = [r for r in requests if r is not None]
        if not requests:
            return None
        request = registry.GradientRequest(
            taps=tuple(dict(tap for r in requests for tap in r.taps).items()),
            classes=tuple(dict.fromkeys(c for r in requests for c in r.classes)),
            second_order=any(r.second_order for r in requests))
        return TapGradients(model, request)

    @property
    def objective_name(self):
        """The objective trained ("none": the family loss alone)."""
        return self.objective_spec.name if self.objective_spec else "none"

    @property
    def needs_labels(self):
        """Whether :meth:`forward` needs the labels (the scores' classes)."""
        return self.tapped is not None

    def forward(self, images, labels=None, training=True):
        """The model's outputs, plus the requested features and gradients when training (never
        in evaluation: the objective is a training loss)."""
        if self.tapped is None or not training:
            return self.model(images, training=training)
        return self.tapped(images, labels, training=training)

    @property
    def metrics(self):
        return [self.loss_metric, self.logits_loss_metric, *self.part_metrics.values(), *self.task_metrics]

    def loss_arguments(self, step):
        """The family loss's keyword arguments at optimizer step `step` (scheduled ones computed)."""
        epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        return {**self.loss_kwargs, **{name: s.value(epoch) for name, s in self.schedules.items()}}

    def losses(self, labels, outputs, step, training=True):
        """``{"loss": (B,), part: (B,), ...}``: the family loss at optimizer step `step` plus, when
        training, each term of the objective (their sum is ``"loss"``)."""
        loss = self.spec.loss(labels, outputs, self.task, **self.loss_arguments(step))
        if self.objective_spec is None or not training:
            return {"loss": loss}
        parts = {name: ops.cast(term, "float32") for name, term in
                 self.objective_spec.terms(labels, outputs, self.task, **self.objective_kwargs).items()}
        return {"loss": ops.cast(loss, "float32") + sum(parts.values()), **parts}

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

    def update_metrics(self, labels, outputs, losses):
        self.update_loss_metrics(labels, outputs, losses)
        self.update_task_metrics(labels, outputs)

    def update_loss_metrics(self, labels, outputs, losses):
        """The objective, each of its parts and the task loss of ``logits`` from :meth:`losses`
        (``model.fit`` calls this where the loss is computed: its metric step cannot read the step
        counter under JAX)."""
        self.loss_metric.update_state(ops.mean(losses["loss"]))
        for part, metric in self.part_metrics.items():
            if part in losses:
                metric.update_state(ops.mean(losses[part]))
        self.logits_loss_metric.update_state(ops.mean(self.task.loss(labels, outputs["logits"])))

    def update_task_metrics(self, labels, outputs):
        self.task.update_train_metrics(self.task_metrics, labels, outputs["logits"])

    def results(self):
        return {m.name: float(m.result()) for m in self.metrics}

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()


def chosen_objective(spec, config):
    """The :class:`zoo.registry.Objective` a run trains: ``config.objective``, None: the
    architecture's default, ``"none"``: the family loss alone."""
    name = config.objective if config.objective is not None else spec.objective
    return None if name in (None, "none") else registry.get_objective(name)


def keyword_parameters(fn):
    """``(names, takes_any)``: the keyword arguments `fn` takes after ``(y_true, outputs, task)``."""
    parameters = list(inspect.signature(fn).parameters.values())[3:]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}, takes_any


def as_schedule(name, schedule):
    """A :class:`LossSchedule` from one or its plain-data form, with an error naming the loss argument."""
    if isinstance(schedule, LossSchedule):
        return schedule
    if not isinstance(schedule, dict):
        raise InvalidInput(f"the loss schedule of {name!r} is a dict like {{\"start\": 0, \"end\": 0.1, \"epochs\": "
                           f"80, \"shape\": \"sigmoid_rampup\", \"per\": \"epoch\"}}, got {schedule!r}")
    fields = [f.name for f in dataclasses.fields(LossSchedule)]
    unknown = sorted(set(schedule) - set(fields))
    missing = [f for f in ("start", "end", "epochs") if f not in schedule]
    if unknown or missing:
        raise InvalidInput(f"the loss schedule of {name!r} takes the keys {', '.join(fields)} (start, end and epochs "
                           f"needed); got {', '.join(unknown) or 'no ' + ', '.join(missing)}")
    return LossSchedule(**schedule)


def loss_schedules(spec, config):
    """The loss arguments that follow the epoch: the architecture's schedules, those of the recipe
    (``config.loss_schedules``, which replace them), minus the arguments the recipe fixes as constants
    (``config.loss_kwargs``: ``--loss-arg patch_loss_weight=0.05`` trains at 0.05 throughout)."""
    both = sorted(set(config.loss_schedules) & set(config.loss_kwargs))
    if both:
        raise InvalidInput(f"loss argument {both[0]!r} is given both as a constant (loss_kwargs, --loss-arg) and as a "
                           "schedule (loss_schedules, --loss-schedule): keep one")
    own = {k: v for k, v in spec.loss_schedules.items() if k not in config.loss_kwargs}
    return {name: as_schedule(name, schedule) for name, schedule in {**own, **config.loss_schedules}.items()}


def split_loss_kwargs(spec, objective, kwargs):
    """``(family loss kwargs, objective term kwargs, objective options)``: each loss argument goes
    to the one that takes it; one that none takes is an error that lists the valid ones."""
    family, family_takes_any = keyword_parameters(spec.loss)
    family |= set(spec.loss_schedules)
    terms = keyword_parameters(objective.terms)[0] if objective else set()
    options = set(objective.options) if objective else set()
    unknown = [key for key in kwargs if key not in family | terms | options and not family_takes_any]
    if unknown:
        where = f"{spec.name}{f' with the {objective.name} objective' if objective else ''}"
        raise InvalidInput(f"{where} takes no loss argument {unknown[0]!r}; its loss arguments are: "
                           f"{', '.join(sorted(family | terms | options))}")
    return ({k: v for k, v in kwargs.items() if k not in terms | options},
            {k: v for k, v in kwargs.items() if k in terms}, {k: v for k, v in kwargs.items() if k in options})


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
    loss can be the one that overflowed), so the last checkpoint is always a good one. Pass every
    model variable: BN's moving statistics can overflow while the trainable weights are finite."""
    for variable in variables:
        value = ops.convert_to_numpy(variable)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise TrainingDiverged(
                f"the weights became non-finite ({variable.path}) by step {step}; no checkpoint was written from "
                f"them and nothing was saved as trained. Lower the learning rate (--lr {config.lr:g} now)")
