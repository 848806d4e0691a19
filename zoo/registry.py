"""Model registry: timm-style ``arch.tag`` names, wildcard listing and name suggestions.

An *architecture* (``abn_resnet20``) is a builder registered with :func:`register_model`; a
*pretrained tag* (``abn_resnet20.cifar10``) is an entry of the weights manifest
(:mod:`zoo.weights`). ``build`` makes a fresh model, ``zoo.load`` a pretrained one.
"""

import dataclasses
import difflib
import fnmatch
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one architecture."""

    name: str
    family: str
    builder: Callable  # builder(**kwargs) -> keras.Model with dict outputs
    loss: Callable  # loss(y_true, outputs: dict, **loss_kwargs) -> per-example loss
    defaults: dict  # default builder kwargs (num_classes, input_shape, ...)
    description: str = ""
    feature_layers: tuple = ()  # name prefixes of the feature-extractor layers (frozen by finetune)


_REGISTRY: dict = {}


def register_model(name, family, builder, loss, description="", feature_layers=(), **defaults):
    """Register `builder` under architecture `name` (called by each family module)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = ModelSpec(name, family, builder, loss, dict(defaults), description, tuple(feature_layers))
    return _REGISTRY[name]


def split_name(name):
    """``"abn_resnet20.cifar10"`` -> ``("abn_resnet20", "cifar10")``; no tag -> ``(name, None)``."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def unknown_name_error(name, candidates, what="model"):
    """A ValueError that names the closest known names (for typos)."""
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"Unknown {what} {name!r}.{hint} See zoo.list_models() for all names.")


def get_spec(name) -> ModelSpec:
    """The :class:`ModelSpec` of an architecture (a tag in `name` is ignored)."""
    arch, _ = split_name(name)
    if arch not in _REGISTRY:
        from zoo import weights

        raise unknown_name_error(name, list(_REGISTRY) + weights.pretrained_names())
    return _REGISTRY[arch]


def list_models(pattern="*", pretrained=False):
    """Sorted architecture names matching the fnmatch `pattern` (``"abn*"``).

    With ``pretrained=True``, the pretrained ``arch.tag`` names (from the weights manifest).
    """
    if pretrained:
        from zoo import weights

        names = weights.pretrained_names()
    else:
        names = list(_REGISTRY)
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def build(name, num_classes: Optional[int] = None, input_shape=None, **kwargs):
    """A freshly initialised model of architecture `name` (``zoo.build("abn_resnet20", 100)``).

    The returned model carries ``model.zoo_config`` (``arch`` and the full builder kwargs),
    which :func:`zoo.save_model` writes next to the weights.
    """
    spec = get_spec(name)
    config = dict(spec.defaults)
    if num_classes is not None:
        config["num_classes"] = int(num_classes)
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    config.update(kwargs)
    model = spec.builder(**config)
    config["input_shape"] = list(config["input_shape"])
    model.zoo_config = {"arch": spec.name, "family": spec.family, "build": config}
    return model
