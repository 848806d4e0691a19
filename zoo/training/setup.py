"""What both engines set up the same way (backend-agnostic): the model for the data, the
optimizer, the step counts, and the checks that keep a run from training on wrong labels."""

import json
import math
import os

import keras
import numpy as np

from zoo import registry, tasks
from zoo.training.recipe import TrainConfig, learning_rate_schedule

# TrainConfig fields each engine cannot honour, with what to do instead
FIT_UNSUPPORTED = {
    "deterministic": "the fit engine has no deterministic-ops switch; use --engine loop",
}


def steps_per_epoch(num_examples, batch_size):
    """Full batches per epoch (the last partial batch is dropped when training)."""
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f"{num_examples} training images is less than one batch of {batch_size}; "
                         "lower --batch-size")
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


RUN_CONFIG = "run_config.json"
RESUME_FIELDS = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "milestones",
                 "gamma", "warmup_epochs", "label_smoothing", "loss_kwargs", "loss_schedules", "mixed_precision",
                 "seed", "augment")


def check_resume_config(checkpoint_dir, config: TrainConfig, resume):
    """Record the recipe beside the checkpoints; a resume with a different recipe (batch size,
    seed, learning rate, ...) is an error rather than a run whose saved config would lie."""
    if not checkpoint_dir:
        return
    os.makedirs(checkpoint_dir, exist_ok=True)
    path = os.path.join(checkpoint_dir, RUN_CONFIG)
    current = {k: v for k, v in config.to_json().items() if k in RESUME_FIELDS}
    current = json.loads(json.dumps(current))  # tuples -> lists, as read back
    if resume and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        changed = [f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in RESUME_FIELDS if saved.get(k) != current[k]]
        if changed:
            raise ValueError(f"--resume with a different recipe than the run in {checkpoint_dir} ("
                             + "; ".join(changed) + "): pass the original values, or start a new --checkpoint-dir")
        return
    with open(path + ".tmp", "w") as f:
        json.dump(current, f, indent=1)
    os.replace(path + ".tmp", path)
