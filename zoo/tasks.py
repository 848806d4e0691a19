"""What a model predicts and how it is scored: the *task* of an architecture.

Every place outside the family modules that turns ``logits`` into a loss, probabilities, a
metric or a prediction asks the model's task (``zoo.tasks.task_of(model)``) instead of assuming a
softmax. Two tasks:

- ``multiclass``: one label per image, integer targets (B,) (or one-hot / mixed (B, K) from
  MixUp/CutMix); softmax cross-entropy; top-1 / top-5 accuracy.
- ``multilabel``: any number of binary attributes per image, multi-hot targets (B, A) in {0, 1};
  one sigmoid per attribute, binary cross-entropy averaged over attributes; per-attribute and
  mean accuracy (threshold 0.5), the majority-class baseline of the evaluated labels and the mean
  ROC AUC.

Backend-agnostic: keras.ops for what runs inside training, numpy for evaluation.
"""

import keras
import numpy as np
from keras import ops

TASKS = ("multiclass", "multilabel")


class Task:
    """Base class: the loss, activation, label checks and metrics of one kind of prediction."""

    name = ""

    def loss(self, y_true, logits, label_smoothing=0.0):  # pragma: no cover - abstract
        raise NotImplementedError

    def probabilities(self, logits):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"Task({self.name!r})"

    def __eq__(self, other):
        return isinstance(other, Task) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


class MulticlassTask(Task):
    """One of K classes per image (softmax)."""

    name = "multiclass"

    def loss(self, y_true, logits, label_smoothing=0.0):
        """Per-example softmax cross-entropy for integer (B,) or one-hot / mixed (B, K) targets."""
        if len(y_true.shape) == 1:
            if not label_smoothing:
                return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
            y_true = ops.one_hot(ops.cast(y_true, "int32"), logits.shape[-1])
        return keras.losses.categorical_crossentropy(y_true, logits, from_logits=True,
                                                     label_smoothing=label_smoothing)

    def probabilities(self, logits):
        return ops.softmax(ops.cast(logits, "float32"), axis=-1)

    def check_labels(self, labels, num_outputs, where="the data"):
        """Integer labels (N,) in [0, num_outputs); raises a ValueError that says what is wrong."""
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise ValueError(
                f"{where} has multi-label targets of shape {labels.shape}, but this model is single-label "
                "(multiclass, softmax). Build a multilabel model (zoo.build(..., task='multilabel') or "
                "--task multilabel), or give one integer class per image")
        labels = labels.reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= num_outputs):
            raise ValueError(f"{where} has labels from {labels.min()} to {labels.max()}, but the model predicts "
                             f"{num_outputs} classes (0..{num_outputs - 1})")
        return labels.astype("int64")

    def train_metrics(self):
        return [keras.metrics.Accuracy(name="accuracy")]

    def update_train_metrics(self, metrics, y_true, logits):
        true = y_true if len(y_true.shape) == 1 else ops.argmax(y_true, axis=-1)
        metrics[0].update_state(true, ops.argmax(logits, axis=-1))

    def correct(self, logits, labels):
        """Per-example score in [0, 1]: 1 where the top-1 class is right."""
        return (np.argmax(logits, axis=-1) == np.asarray(labels)).astype("float64")

    def evaluator(self, label_names):
        return MulticlassEvaluator(label_names)

    def describe(self, probabilities, label_names, top_k=5, threshold=None):
        """The top-k ``(name, probability)`` of one image's probabilities."""
        order = np.argsort(-probabilities)[:top_k]
        return [(label_names[j], float(probabilities[j])) for j in order]


class MultilabelTask(Task):
    """A binary decision per attribute (one sigmoid each)."""

    name = "multilabel"
    threshold = 0.5

    def loss(self, y_true, logits, label_smoothing=0.0):
        """Per-example binary cross-entropy, averaged over the attributes."""
        return keras.losses.binary_crossentropy(ops.cast(y_true, "float32"), ops.cast(logits, "float32"),
                                                from_logits=True, label_smoothing=label_smoothing)

    def probabilities(self, logits):
        return ops.sigmoid(ops.cast(logits, "float32"))

    def check_labels(self, labels, num_outputs, where="the data"):
        """Multi-hot targets (N, num_outputs) in {0, 1}."""
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise ValueError(
                f"{where} has labels of shape {labels.shape}, but this model is multi-label and needs multi-hot "
                f"targets (N, {num_outputs}) in {{0, 1}} (an attributes .npz, CSV or tfds attributes dict)")
        if labels.shape[1] != num_outputs:
            raise ValueError(f"{where} has {labels.shape[1]} attributes per image, but the model predicts "
                             f"{num_outputs}")
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{where} has attribute values other than 0 and 1 ({np.unique(labels)[:5]}...); "
                             "map them to 0/1 first (CelebA's -1 means absent)")
        return labels.astype("float32")

    def train_metrics(self):
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]  # on logits: p >= 0.5

    def update_train_metrics(self, metrics, y_true, logits):
        metrics[0].update_state(ops.cast(y_true, "float32"), ops.cast(logits, "float32"))

    def correct(self, logits, labels):
        """Per-example fraction of the attributes that are right."""
        return ((np.asarray(logits) >= 0) == (np.asarray(labels) >= 0.5)).mean(axis=-1)

    def evaluator(self, label_names):
        return MultilabelEvaluator(label_names)

    def describe(self, probabilities, label_names, top_k=None, threshold=None):
        """Every attribute predicted present (probability >= threshold), most probable first
        (`top_k` is for single-label models and is ignored: no present attribute is hidden)."""
        threshold = self.threshold if threshold is None else threshold
        order = [j for j in np.argsort(-probabilities, kind="stable") if probabilities[j] >= threshold]
        return [(label_names[j], float(probabilities[j])) for j in order]


_TASKS = {"multiclass": MulticlassTask(), "multilabel": MultilabelTask()}


def get_task(task):
    """The :class:`Task` named `task` (a Task passes through)."""
    if isinstance(task, Task):
        return task
    if task not in _TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return _TASKS[task]


def task_of(model):
    """The task of a zoo model (its ``zoo_config``; models without one are multiclass)."""
    return get_task((getattr(model, "zoo_config", None) or {}).get("task", "multiclass"))


def label_names_of(model):
    """Class or attribute names of a model (``"0"``, ``"1"``, ... when it has none)."""
    names = (getattr(model, "zoo_config", None) or {}).get("class_names")
    return list(names) if names else [str(i) for i in range(model.output["logits"].shape[-1])]


class MulticlassEvaluator:
    """Accumulates top-1/top-5 accuracy, loss, per-class accuracy and the confusion matrix."""

    def __init__(self, label_names):
        self.label_names = list(label_names)
        k = len(self.label_names)
        self.confusion = np.zeros((k, k), dtype="int64")
        self.correct5 = 0
        self.loss_sum = 0.0

    def update(self, logits, labels, losses):
        logits, labels = np.asarray(logits, "float32"), np.asarray(labels).astype("int64")
        top5 = np.argsort(-logits, axis=-1)[:, :5]
        self.correct5 += int(np.sum(np.any(top5 == labels[:, None], axis=-1)))
        np.add.at(self.confusion, (labels, top5[:, 0]), 1)
        self.loss_sum += float(np.sum(losses))

    def result(self):
        total = int(self.confusion.sum())
        per_class_total = self.confusion.sum(axis=1)
        per_class = {name: (float(self.confusion[i, i] / per_class_total[i]) if per_class_total[i] else None)
                     for i, name in enumerate(self.label_names)}
        return {"top1": float(np.trace(self.confusion) / total), "top5": self.correct5 / total,
                "loss": self.loss_sum / total, "num_examples": total, "per_class_accuracy": per_class,
                "confusion_matrix": self.confusion.tolist()}


class MultilabelEvaluator:
    """Accumulates per-attribute accuracy, the majority-class baseline, mean AUC and loss."""

    def __init__(self, label_names):
        self.label_names = list(label_names)
        self.logits, self.labels = [], []
        self.loss_sum = 0.0

    def update(self, logits, labels, losses):
        self.logits.append(np.asarray(logits, "float32"))
        self.labels.append(np.asarray(labels, "float32"))
        self.loss_sum += float(np.sum(losses))

    def result(self):
        logits, labels = np.concatenate(self.logits), np.concatenate(self.labels) >= 0.5
        per_attribute = ((logits >= 0) == labels).mean(axis=0)
        positive_rate = labels.mean(axis=0)
        majority = np.maximum(positive_rate, 1 - positive_rate)  # always predicting the commoner value
        aucs = [roc_auc(logits[:, a], labels[:, a]) for a in range(labels.shape[1])]
        valid = [a for a in aucs if a is not None]
        return {
            "mean_accuracy": float(per_attribute.mean()),
            "majority_baseline": float(majority.mean()),
            "mean_auc": float(np.mean(valid)) if valid else None,
            "loss": self.loss_sum / len(labels),
            "num_examples": int(len(labels)),
            "per_attribute_accuracy": dict(zip(self.label_names, map(float, per_attribute))),
            "per_attribute_auc": dict(zip(self.label_names, aucs)),
        }


def roc_auc(scores, positives):
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); None with one class only."""
    scores, positives = np.asarray(scores, "float64"), np.asarray(positives, bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average the ranks of tied scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
