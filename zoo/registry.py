"""Model registry: timm-style ``arch.tag`` names, wildcard listing and name suggestions.

An *architecture* (``abn_resnet20``) is a builder registered with :func:`register_model`; a
*pretrained tag* (``abn_resnet20.cifar10``) is an entry of the weights manifest
(:mod:`zoo.weights`). ``build`` makes a fresh model, ``zoo.load`` a pretrained one.

What the rest of the zoo needs to know about an architecture is declared here, not guessed from
layer names or output shapes (timm's ``feature_info`` and ``default_cfg["classifier"]``):
its task (:mod:`zoo.tasks`), its feature taps (the Grad-CAM layer, an inner layer, the attention
maps and their kind) and its head layers (:class:`FeatureInfo`).
"""

import dataclasses
import difflib
import fnmatch
import inspect
import re
from typing import Callable, Optional

from zoo import tasks
from zoo.errors import InvalidInput

# How an attention map is normalised (what a value in it means):
MAP_KINDS = {
    "sigmoid": "independent per-position weights in [0, 1] (ABN's M)",
    "softmax_space": "a distribution over the spatial positions, summing to 1 (LTPA's a)",
    "scores": "raw, unnormalised compatibility scores",
    "per_attribute": "one map per attribute, last axis = attributes",
    "per_channel": "one map per feature channel (and attribute)",
    "patch_weights": "weights over a grid of image patches, summing to 1 (loss-based attention's alpha)",
}


@dataclasses.dataclass(frozen=True)
class MapTap:
    """An attention map that the model returns as the output `output`.

    ``unit_range``: its values are weights in [0, 1] that mean something as they are (sigmoid
    gates), so figures draw them on a fixed 0-1 scale; other maps (softmax over space, raw scores)
    are min-max normalised per map for display. None: True for the ``sigmoid`` kind only.

    A ``patch_weights`` map may declare its patches: ``patch_logits`` (the output with each
    patch's class logits, (B, gh, gw, K)) and ``patch_window`` (``(size, stride)`` in input pixels:
    patch (i, j) covers rows ``[i*stride, i*stride + size)`` and the same columns), which patch
    precision / recall (:func:`zoo.explain.metrics.patch_precision_recall`) read.
    """

    output: str
    kind: str
    description: str = ""
    unit_range: Optional[bool] = None
    patch_logits: Optional[str] = None
    patch_window: Optional[tuple] = None

    def __post_init__(self):
        if self.kind not in MAP_KINDS:
            raise ValueError(f"map kind must be one of {tuple(MAP_KINDS)}, got {self.kind!r}")
        if self.unit_range is None:
            object.__setattr__(self, "unit_range", self.kind == "sigmoid")

    @property
    def scale_label(self):
        """How figures show this map: its name, kind and colour scale (e.g. "attention: sigmoid, 0-1"),
        on two lines when long."""
        kind = {"sigmoid": "sigmoid", "softmax_space": "softmax over space", "scores": "raw scores",
                "per_attribute": "per attribute", "per_channel": "per channel",
                "patch_weights": "patch weights"}[self.kind]
        label = f"{self.output}: {kind}, {'0-1' if self.unit_range else 'min-max per map'}"
        return label if len(label) <= 32 else label.replace(", ", "\n", 1)


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """The declared taps and heads of one built architecture.

    - ``gradcam_layer``: the layer whose output Grad-CAM targets by default (the last spatial
      features the prediction depends on);
    - ``inner_layer``: an earlier feature map (for cross-layer methods);
    - ``maps``: the attention maps, the one drawn by default first;
    - ``heads``: the layers whose weights depend on the number of classes (replaced when
      fine-tuning on other classes);
    - ``feature_layers``: name prefixes of the feature extractor (frozen by ``finetune --freeze``).
    """

    gradcam_layer: str
    inner_layer: Optional[str]
    maps: tuple
    heads: tuple
    feature_layers: tuple

    @property
    def map_names(self):
        return tuple(m.output for m in self.maps)

    def map(self, name):
        for tap in self.maps:
            if tap.output == name:
                return tap
        raise unknown_name_error(name, list(self.map_names), "attention map")


@dataclasses.dataclass(frozen=True)
class GradientRequest:
    """What a loss needs from inside the train step (:class:`zoo.gradcam.TapGradients`): the
    feature maps of `taps` and, at each, the gradient of each class score of `classes`.

    - ``taps``: ``((alias, layer), ...)``; a layer name, or ``"gradcam"`` / ``"inner"`` for the
      architecture's declared Grad-CAM / inner layer; the loss reads ``outputs["features/<alias>"]``
      and ``outputs["gradients/<alias>/<class>"]``;
    - ``classes``: ``"true"`` (the label), ``"confusing"`` (:func:`zoo.gradcam.confusing_class`)
      or ``(name, chooser)`` with ``chooser(logits, labels)`` -> labels (B,) or weights (B, K);
    - ``second_order``: the gradients stay differentiable, so the loss's own gradient flows
      through them (and through Grad-CAM's weights); False treats them as constants (first order).
    """

    taps: tuple = (("gradcam", "gradcam"),)
    classes: tuple = ("true",)
    second_order: bool = False


@dataclasses.dataclass(frozen=True)
class Objective:
    """A training objective that adds terms to any architecture's own loss (``zoo train
    --objective NAME``): ``terms(y_true, outputs, task, **kwargs) -> {part: (B,)}``, summed onto
    the family loss and each logged as a metric; ``gradients(model, **options) -> GradientRequest``
    says what the terms read (None: the model's plain outputs), with `options` the loss arguments
    named in ``options`` (e.g. ``second_order``) that choose it."""

    name: str
    terms: Callable
    parts: tuple
    gradients: Optional[Callable] = None
    options: tuple = ()
    description: str = ""


_OBJECTIVES: dict = {}


def register_objective(objective):
    """Register an :class:`Objective` under its name (by the family module that defines it)."""
    if objective.name in _OBJECTIVES:
        raise ValueError(f"objective {objective.name!r} is registered twice")
    _OBJECTIVES[objective.name] = objective
    return objective


def get_objective(name):
    """The registered :class:`Objective` `name` (an error with close names if unknown)."""
    if name not in _OBJECTIVES:
        raise unknown_name_error(name, list(_OBJECTIVES), "objective")
    return _OBJECTIVES[name]


def objective_names():
    return tuple(_OBJECTIVES)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one architecture."""

    name: str
    family: str
    builder: Callable  # builder(**kwargs) -> keras.Model with dict outputs
    loss: Callable  # loss(y_true, outputs: dict, task, **loss_kwargs) -> per-example loss
    feature_info: Callable  # feature_info(build_config: dict) -> FeatureInfo
    defaults: dict  # default builder kwargs (num_classes, input_shape, ...)
    task: str = "multiclass"  # the default task
    tasks: tuple = tasks.TASKS  # the tasks this architecture can be built for
    description: str = ""
    loss_schedules: dict = dataclasses.field(default_factory=dict)  # loss kwarg -> zoo.training.core.LossSchedule
    gradients: Optional[GradientRequest] = None  # what the family loss reads from inside the train step
    objective: Optional[str] = None  # the objective trained by default (a registered Objective), None: the loss
    test_config: Optional[dict] = None  # builder kwargs of a small, quick model for the generic tests; None: too heavy


_REGISTRY: dict = {}


def register_model(name, family, builder, loss, feature_info, task="multiclass", tasks_supported=tasks.TASKS,
                   description="", loss_schedules=None, gradients=None, objective=None, test_config=None, **defaults):
    """Register `builder` under architecture `name` (called by each family module).

    `loss_schedules` maps loss keyword arguments to schedules over the epoch
    (:class:`zoo.training.core.LossSchedule`), applied by the training core. With `gradients` (a
    :class:`GradientRequest`) the core gives the loss feature maps and class-score gradients from
    inside the train step. `objective`: a registered :class:`Objective` trained by default
    (``zoo train --objective none`` trains the loss alone). `test_config`: builder arguments of a
    small version that builds in about a second, which the generic tests (``tests/test_safety.py``)
    build for every architecture; None skips an architecture too heavy for them (say why).
    """
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    valid = builder_arguments(ModelSpec(name, family, builder, loss, feature_info, {}))
    unknown = sorted(set(defaults) - set(valid)) if valid is not None else []
    if unknown:  # a misspelt hook (loss_schedule=...) would otherwise become a builder default
        hooks = [p for p in inspect.signature(register_model).parameters][5:-1]  # task ... test_config
        close = difflib.get_close_matches(unknown[0], hooks + valid, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise TypeError(f"register_model({name!r}): {unknown[0]!r} is neither a registration option "
                        f"({', '.join(hooks)}) nor an argument of {builder.__name__}.{hint}")
    _REGISTRY[name] = ModelSpec(name, family, builder, loss, feature_info, dict(defaults), task,
                                tuple(tasks_supported), description, dict(loss_schedules or {}), gradients, objective,
                                None if test_config is None else dict(test_config))
    return _REGISTRY[name]


def unregister_model(name):
    """Remove architecture `name` (tests register throw-away families)."""
    _REGISTRY.pop(name, None)


def split_name(name):
    """``"abn_resnet20.cifar10"`` -> ``("abn_resnet20", "cifar10")``; no tag -> ``(name, None)``."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def unknown_name_error(name, candidates, what="model"):
    """A ValueError that names the closest known names (for typos)."""
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    where = "See zoo.list_models() for all names." if what in ("model", "pretrained model") else (
        f"The {what}s are: {', '.join(map(str, candidates))}." if len(candidates) <= 50 else "")
    return InvalidInput(f"Unknown {what} {name!r}.{hint} {where}".rstrip())


def builder_arguments(spec):
    """The keyword arguments the builder of `spec` takes (None if it takes any: ``**kwargs``)."""
    parameters = inspect.signature(spec.builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return sorted(p.name for p in parameters if p.name != "name" and p.kind is not inspect.Parameter.VAR_POSITIONAL)


def check_builder_kwargs(spec, kwargs):
    """An error naming a builder argument that `spec`'s builder does not take, with the valid ones."""
    valid = builder_arguments(spec)
    if valid is None:
        return
    for key in kwargs:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise InvalidInput(f"{spec.name} has no builder argument {key!r}.{hint} Its arguments are: "
                               f"{', '.join(valid)}")


def get_spec(name) -> ModelSpec:
    """The :class:`ModelSpec` of an architecture (a tag in `name` is ignored)."""
    arch, _ = split_name(name)
    if arch not in _REGISTRY:
        raise unknown_name_error(name, list(_REGISTRY) + pretrained_names())
    return _REGISTRY[arch]


_PRETRAINED_SOURCES: list = []


def add_pretrained_source(names):
    """Register `names() -> [arch.tag, ...]`, a source of pretrained names (:mod:`zoo.weights`
    adds its manifest; the registry does not import it)."""
    if names not in _PRETRAINED_SOURCES:
        _PRETRAINED_SOURCES.append(names)


def pretrained_names():
    """Every pretrained ``arch.tag`` name of the registered sources."""
    return [name for source in _PRETRAINED_SOURCES for name in source()]


def natural_key(name):
    """Sort key that orders embedded numbers by value (``abn_resnet20`` before ``abn_resnet101``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern="*", pretrained=False):
    """Architecture names matching the fnmatch `pattern` (``"abn*"``), in natural order.

    With ``pretrained=True``, the pretrained ``arch.tag`` names (from the weights manifest).
    """
    if pretrained:
        names = pretrained_names()
    else:
        names = list(_REGISTRY)
    return sorted((n for n in names if fnmatch.fnmatch(n, pattern)), key=natural_key)


def feature_info(model_or_name, **build_config) -> FeatureInfo:
    """The declared :class:`FeatureInfo` of a zoo model (or of architecture `name` built with
    `build_config`)."""
    if isinstance(model_or_name, str):
        spec = get_spec(model_or_name)
        return spec.feature_info({**spec.defaults, **build_config})
    config = model_or_name.zoo_config
    return get_spec(config["arch"]).feature_info(config["build"])


def build(name, num_classes: Optional[int] = None, input_shape=None, task=None, **kwargs):
    """A freshly initialised model of architecture `name` (``zoo.build("abn_resnet20", 100)``).

    `task` (``"multiclass"`` or ``"multilabel"``, default the architecture's) chooses how the
    logits are trained and read (:mod:`zoo.tasks`). The returned model carries
    ``model.zoo_config`` (``arch``, ``task`` and the full builder kwargs), which
    :func:`zoo.save_model` writes next to the weights. For pretrained weights use ``zoo.load``.
    """
    arch, tag = split_name(name)
    if tag is not None:
        raise ValueError(f"zoo.build makes a freshly initialised network and takes an architecture name, got the "
                         f"pretrained name {name!r}: use zoo.load({name!r}) for the weights, or "
                         f"zoo.build({arch!r}) for a fresh model")
    spec = get_spec(name)
    task = spec.task if task is None else tasks.get_task(task).name
    if task not in spec.tasks:
        raise InvalidInput(f"{spec.name} supports the tasks {spec.tasks}, not {task!r}")
    check_builder_kwargs(spec, kwargs)
    config = dict(spec.defaults)
    if num_classes is not None:
        config["num_classes"] = int(num_classes)
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    config.update(kwargs)
    model = spec.builder(**{"name": spec.name, **config})
    if task == "multiclass" and config.get("num_classes", 2) < 2:
        raise ValueError(f"a multiclass model needs at least 2 classes, got num_classes={config['num_classes']} "
                         "(a one-class dataset cannot be learned: every image would score 100%)")
    config["input_shape"] = list(config["input_shape"])
    model.zoo_config = {"arch": spec.name, "family": spec.family, "task": task, "build": config}
    return model
