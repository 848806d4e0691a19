"""What both engines set up the same way (backend-agnostic): the model for the data, the
optimizer, the step counts, and the checks that keep a run from training on wrong labels."""

import json
import math
import os
import sys
import warnings
import zlib

import keras
import numpy as np

from zoo import registry, tasks
from zoo.errors import InvalidInput, ResumeMismatch
from zoo.training.recipe import TrainConfig, learning_rate_schedule, resolve_precision

# TrainConfig fields each engine cannot honour, with what to do instead
FIT_UNSUPPORTED = {
    "deterministic": "the fit engine has no deterministic-ops switch; use --engine loop",
}


FEW_STEPS = 10  # fewer optimizer steps per epoch than this is warned about


def resolved(config: TrainConfig) -> TrainConfig:
    """`config` with its precision resolved for this machine (``"auto"`` -> bfloat16 or float32,
    :func:`zoo.training.recipe.resolve_precision`): what the run uses and its saved config records."""
    import dataclasses

    return dataclasses.replace(config, mixed_precision=resolve_precision(config.mixed_precision))


def fit_jit_compile(config: TrainConfig):
    """``model.fit``'s XLA switch: ``config.jit_compile``, or (None) Keras' ``"auto"``: always under
    JAX, on TensorFlow only with a GPU, never under PyTorch. (The loop engine compiles with XLA only
    when asked: on the CPUs measured it trains at parity to 17x slower with it, README.)"""
    return "auto" if config.jit_compile is None else bool(config.jit_compile)


def steps_per_epoch(num_examples, batch_size):
    """Full batches per epoch (the last partial batch is dropped when training)."""
    steps = num_examples // batch_size
    if steps == 0:
        raise InvalidInput(f"{num_examples} training images is less than one batch of {batch_size}; "
                           "lower --batch-size")
    dropped = num_examples - steps * batch_size
    if steps < FEW_STEPS or dropped > num_examples // 10:
        suggestion = max(1, 2 ** int(math.log2(max(1, num_examples // FEW_STEPS))))
        warnings.warn(f"{num_examples} training images in batches of {batch_size}: {steps} step(s) per epoch, "
                      f"{dropped} images ({dropped / num_examples:.0%}) left out of every epoch; a small data set "
                      f"learns better with more, smaller steps: try --batch-size {suggestion}", stacklevel=2)
    return steps


def total_steps(config: TrainConfig, per_epoch):
    """Optimizer steps of the run: all epochs, or `max_steps` if that is fewer."""
    total = config.epochs * per_epoch
    return min(total, config.max_steps) if config.max_steps else total


def epochs_to_run(config: TrainConfig, per_epoch):
    """Epochs an epoch-based engine must start to reach :func:`total_steps`."""
    return max(1, math.ceil(total_steps(config, per_epoch) / per_epoch))


def make_optimizer(config: TrainConfig, per_epoch):
    """SGD with momentum on the recipe's schedule (loss-scaled under float16)."""
    optimizer = keras.optimizers.SGD(learning_rate_schedule(config, per_epoch), momentum=config.momentum,
                                     nesterov=config.nesterov)
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_model(model, train_data, build_kwargs=None):
    """`model` (an architecture name, or a factory of a fresh or pretrained model) for the data:
    a name is built with one output per class or attribute of the data, and the data's task."""
    if callable(model):
        net = model()
    else:
        kwargs = {"num_classes": len(train_data.class_names), **(build_kwargs or {})}
        kwargs.setdefault("task", getattr(train_data, "task", None))
        net = registry.build(model, **kwargs)
    if not net.zoo_config.get("class_names"):
        net.zoo_config["class_names"] = list(train_data.class_names)
    return net


def check_data(model, train_data, test_data=None, val_data=None):
    """Refuse data the model would train on silently wrong: a task or width mismatch, labels
    out of range, or a single class."""
    task = tasks.task_of(model)
    num_outputs = model.output["logits"].shape[-1]
    for name, source in (("training data", train_data), ("test data", test_data), ("validation data", val_data)):
        if source is None:
            continue
        data_task = getattr(source, "task", None)
        if data_task and data_task != task.name:
            raise ValueError(f"the {name} is {data_task} but the model is {task.name}: build the model with "
                             f"task={data_task!r} (--task {data_task}) or use {task.name} data")
        labels = getattr(source, "labels", None)
        if labels is not None:
            labels = task.check_labels(labels, num_outputs, f"the {name}")
            if name == "training data" and task.name == "multiclass" and len(np.unique(labels)) < 2:
                raise ValueError(f"the training data has a single class ({source.class_names[int(labels[0])]!r}): "
                                 "a classifier needs images of at least two classes")
        if len(source.class_names) != num_outputs:
            raise ValueError(f"the {name} has {len(source.class_names)} classes/attributes but the model predicts "
                             f"{num_outputs}")


def check_keep_best(config: TrainConfig, val_data):
    """``keep_best`` chooses on validation data, which must be there (never the test split)."""
    if config.keep_best and val_data is None:
        raise ValueError("keep_best needs validation data (--val-split): the best epoch is never chosen on the "
                         "test split")


def check_engine_options(engine, config: TrainConfig, strategy=None):
    """An error for options the chosen engine would otherwise ignore."""
    if engine != "fit":
        return
    problems = [why for field, why in FIT_UNSUPPORTED.items() if getattr(config, field)]
    if strategy not in (None, "default"):
        problems.append(f"--strategy {strategy} needs tf.distribute: use --engine loop")
    if problems:
        raise ValueError("the fit engine does not support: " + "; ".join(problems))


def check_config(config: TrainConfig, resume=False):
    """Refuse a recipe that cannot train as asked (both engines, before any work): counts that
    must be positive, rates in range, options that the chosen schedule would ignore, and a
    resume with nothing to resume from."""
    problems = []
    for field in ("epochs", "batch_size", "checkpoint_every", "eval_batch_size", "log_every"):
        if int(getattr(config, field)) < 1:
            problems.append(f"{field} must be at least 1, got {getattr(config, field)}")
    if config.max_steps is not None and config.max_steps < 1:
        problems.append(f"max_steps must be at least 1, got {config.max_steps}")
    if not config.lr >= 0 or not math.isfinite(config.lr):  # 0 is allowed here: a run that only measures
        problems.append(f"lr must be a finite number >= 0, got {config.lr}")
    if not 0 <= config.momentum < 1:
        problems.append(f"momentum must be in [0, 1), got {config.momentum}")
    if config.weight_decay < 0:
        problems.append(f"weight_decay must be >= 0, got {config.weight_decay}")
    if not 0 <= config.label_smoothing < 1:
        problems.append(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.schedule == "step" and config.warmup_epochs:
        problems.append("warmup_epochs applies to the cosine schedule only (--schedule step has no warm-up): drop "
                        "--warmup-epochs or use --schedule cosine")
    if config.warmup_epochs < 0 or config.warmup_epochs >= config.epochs:
        problems.append(f"warmup_epochs must be in [0, epochs={config.epochs}), got {config.warmup_epochs}")
    if resume and not config.checkpoint_dir:
        problems.append("resume needs the checkpoints of the run to continue: pass --checkpoint-dir (checkpoint_dir)")
    if config.objective not in (None, "none"):
        from zoo import registry

        registry.get_objective(config.objective)  # an unknown name lists the registered ones
    if problems:
        raise InvalidInput("; ".join(problems))


RUN_CONFIG = "run_config.json"
RESUME_FIELDS = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "milestones",
                 "gamma", "warmup_epochs", "label_smoothing", "loss_kwargs", "objective", "loss_schedules",
                 "mixed_precision", "seed", "augment")


def data_fingerprint(source):
    """What identifies a training set for ``--resume``: where it comes from, its size in bytes
    (files) and its number of examples and classes."""
    origin = getattr(source, "origin", None)
    fingerprint = {"kind": type(source).__name__, "examples": len(source), "classes": list(source.class_names)}
    if origin is not None:
        fingerprint["origin"] = str(origin)
        fingerprint["split"] = getattr(source, "split", None)
    if origin is not None and os.path.isfile(str(origin)):
        fingerprint["bytes"] = os.path.getsize(str(origin))
    elif getattr(source, "paths", None) is not None:
        fingerprint["bytes"] = int(sum(os.path.getsize(p) for p in source.paths))
    elif getattr(source, "images", None) is not None:
        fingerprint["bytes"] = int(source.images.nbytes)
        fingerprint["crc32"] = zlib.crc32(np.ascontiguousarray(source.images)) ^ zlib.crc32(
            np.ascontiguousarray(source.labels))
    return fingerprint


def run_record(config: TrainConfig, model, train_data):
    """The run as ``run_config.json`` records it: the recipe, the architecture with its builder
    arguments, and the data's fingerprint (JSON types, as read back)."""
    record = {k: v for k, v in config.to_json().items() if k in RESUME_FIELDS}
    record["arch"] = model.zoo_config["arch"]
    record["build"] = model.zoo_config["build"]
    record["data"] = data_fingerprint(train_data)
    return json.loads(json.dumps(record, default=str))


ITEMISED = {"build": "builder arguments", "data": "data"}  # run records whose changes are named entry by entry


def describe_change(key, saved, current):
    if key not in ITEMISED:
        return f"{key}: {saved!r} -> {current!r}"
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    return f"{ITEMISED[key]}: " + ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)


def note_nothing_to_resume(checkpoint_dir):
    """Both engines: a resume onto a checkpoint folder that holds no checkpoint yet says so."""
    print(f"note: {checkpoint_dir} holds no checkpoint yet; starting from step 0", file=sys.stderr)


def check_resume_config(checkpoint_dir, config: TrainConfig, resume, model=None, train_data=None):
    """Record the run beside the checkpoints (:func:`run_record`); a resume onto another run (a
    different recipe, architecture, builder argument or data) is an error that says what
    differs, before any checkpoint is read. Fields an older record lacks are not compared."""
    if not checkpoint_dir:
        return
    os.makedirs(checkpoint_dir, exist_ok=True)
    path = os.path.join(checkpoint_dir, RUN_CONFIG)
    if model is not None:
        current = run_record(config, model, train_data)
    else:
        current = json.loads(json.dumps({k: v for k, v in config.to_json().items() if k in RESUME_FIELDS}))
    if resume and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if "data" in saved and "data" in current:  # older records have no bytes/crc32: compare what both have
            saved["data"] = {k: v for k, v in saved["data"].items() if k in current["data"]}
            current["data"] = {k: v for k, v in current["data"].items() if k in saved["data"]}
        changed = [describe_change(k, saved[k], current[k]) for k in current if k in saved and saved[k] != current[k]]
        if changed:
            raise ResumeMismatch(f"--resume onto a different run than the one in {checkpoint_dir} ("
                                 + "; ".join(changed) + "): pass the original values and data, or start a new "
                                 "--checkpoint-dir")
        return
    with open(path + ".tmp", "w") as f:
        json.dump(current, f, indent=1)
    os.replace(path + ".tmp", path)
