"""Saving and loading zoo models: ``zoo.load(name_or_path)`` and ``zoo.save_model(model, dir)``.

A saved model is a directory (like a keras-hub preset) holding
- ``config.json``: the architecture, its builder kwargs, class names and anything extra
  (training history, the recipe), and
- ``model.weights.h5``: the Keras weights.
It is written to a temporary sibling directory and renamed into place, so an interrupted save
never leaves a half-written model where ``zoo.load`` would find it.
"""

import json
import os
import shutil
from pathlib import Path

from zoo import files, inference, registry
from zoo import weights as zweights
from zoo.errors import DamagedFile, InvalidInput

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"


def check_model_output(directory, force=False):
    """Refuse, before any work, a model folder that would replace something: an existing saved
    model without `force`, a file, or a folder holding anything else (:func:`zoo.files.check_output`)."""
    return files.check_output(directory, force, "folder", replaceable=lambda p: is_saved_model_dir(str(p)))


def save_model(model, directory, class_names=None, extra=None, force=False):
    """Write `model` (built by the zoo: it has ``model.zoo_config``) to `directory`; an existing
    saved model there is replaced only with `force` (:func:`check_model_output`)."""
    inference.check_trainable(model, "be saved as a zoo model (its weights no longer fit the architecture)")
    config = dict(getattr(model, "zoo_config", {}) or {})
    if "arch" not in config:
        raise InvalidInput("save_model needs a model built by zoo.build / zoo.load (it has no zoo_config)")
    if class_names is not None:
        config["class_names"] = list(class_names)
    config.update(extra or {})
    directory = Path(directory)
    check_model_output(directory, force)
    tmp = files.scratch_dir(directory)
    try:
        model.save_weights(str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        files.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def model_image_size(model):
    """(height, width) the model was trained at: its config's ``image_size``, else its input
    shape, else (32, 32) for models built with a dynamic size."""
    config = getattr(model, "zoo_config", {}) or {}
    if config.get("image_size"):
        return tuple(config["image_size"])
    height, width = model.input.shape[1:3]
    return (height or 32, width or 32)


def is_saved_model_dir(path):
    return os.path.isdir(path) and os.path.exists(os.path.join(path, CONFIG_FILE))


def build_from_config(config, num_classes=None, task=None, **overrides):
    """Rebuild the architecture described by a saved config (optionally re-headed)."""
    build_kwargs = {**config["build"], **overrides}
    if num_classes is not None:
        build_kwargs["num_classes"] = num_classes
    model = registry.build(config["arch"], task=task or config.get("task"), **build_kwargs)
    model.zoo_config.update({k: v for k, v in config.items() if k not in ("arch", "family", "build", "task")})
    return model


def load_weights_into(model, path, config, reheaded):
    """Load the weight file `path`. With a new head (`reheaded`), every layer but the declared
    heads (:class:`zoo.registry.FeatureInfo`) is copied from the pretrained network, by name, and
    the heads stay freshly initialised."""
    if not reheaded:
        read_weights(model, path)
        return
    pretrained = build_from_config(config)
    read_weights(pretrained, path)
    heads = set(registry.feature_info(model).heads)
    for layer in model.layers:
        if layer.name not in heads and layer.weights:
            layer.set_weights(pretrained.get_layer(layer.name).get_weights())


def read_weights(model, path):
    """``model.load_weights(path)``, or a :class:`DamagedFile` error that names the file."""
    path = Path(path)
    if not path.is_file():
        raise DamagedFile(f"{path} is missing: the saved model is incomplete; save or copy it again")
    try:
        model.load_weights(str(path))
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DamagedFile(f"{path} cannot be loaded into {model.name} ({first[:200]}): the file is truncated or "
                          "damaged, or was saved for other builder arguments; save or copy it again") from None


def read_json(path):
    """A JSON file, or a ValueError that names it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedFile(f"{path} is not valid JSON ({err}); the saved model is damaged: save it again") from None


def check_saved_config(config, path):
    """A saved model's config must name its architecture and builder arguments."""
    if not isinstance(config, dict) or not isinstance(config.get("arch"), str) or not isinstance(
            config.get("build"), dict):
        found = f"keys {sorted(config)}" if isinstance(config, dict) else f"a JSON {type(config).__name__}"
        raise DamagedFile(f"{path} is not a zoo model config (it needs 'arch' and 'build'; found {found}): "
                          "the saved model is damaged, save it again with zoo.save_model")
    return config


def read_config(name):
    """``(config, weights_path)`` of a pretrained name or saved-model directory, without building
    the model (``config``: arch, task, build kwargs, class names, image size, provenance)."""
    if is_saved_model_dir(str(name)):
        config = check_saved_config(read_json(Path(name) / CONFIG_FILE), Path(name) / CONFIG_FILE)
        config.setdefault("task", "multiclass")
        return config, Path(name) / WEIGHTS_FILE
    entry = zweights.manifest_entry(name)
    config = {"arch": entry["arch"], "task": entry.get("task", "multiclass"), "build": entry["build"],
              "class_names": entry["card"].get("class_names"), "pretrained": entry["name"],
              "image_size": entry["build"]["input_shape"][:2]}
    return config, zweights.resolve(entry["name"])


def load(name, num_classes=None, task=None, reset_heads=False, **build_overrides):
    """A pretrained model in one line: ``zoo.load("abn_resnet20.cifar10")``.

    `name` is a pretrained ``arch.tag`` (or an ``arch`` with a default tag) from the weights
    manifest, or the directory of a model saved by :func:`save_model` (fine-tuned models).
    With `num_classes` (or a `task`) different from the pretrained head, the declared head layers
    are left freshly initialised (the starting point for fine-tuning); ``model.zoo_config`` says so.
    ``reset_heads=True`` does the same for the same number of outputs (other classes or attributes).
    `build_overrides` rebuild the architecture with builder arguments that have no weights (e.g.
    ``mask_transform="power"`` for the multi-channel attention models).
    """
    config, weights_path = read_config(name)
    reheaded = reset_heads or (num_classes is not None and num_classes != config["build"].get("num_classes")) or (
        task is not None and task != config["task"])
    model = build_from_config(config, num_classes, task, **build_overrides)
    load_weights_into(model, weights_path, config, reheaded)
    if reheaded:
        model.zoo_config["class_names"] = None
        model.zoo_config["reheaded_from"] = config.get("pretrained", str(name))
    return model
