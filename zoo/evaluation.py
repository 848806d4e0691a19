"""Accuracy and loss of a model on a data source (``zoo evaluate``), by the model's task.

- multiclass: top-1 / top-5 accuracy, mean cross-entropy, per-class accuracy and the confusion
  matrix (:func:`save_confusion_matrix` draws it);
- multilabel: mean and per-attribute accuracy, the majority-class baseline, mean ROC AUC, mean
  binary cross-entropy.
The data's labels are mapped to the model's class names by name (a folder ``cats/`` is the
model's class ``cat`` only if it is named so; a class the model does not know is an error).
"""

import keras
import numpy as np

from zoo import inference, tasks
from zoo.hub import model_image_size
from zoo.progress import Progress


def evaluate(model, data, batch_size=500, progress=True, split="test"):
    """Evaluate `model` on `data` (anything :func:`zoo.data.open_source` takes); `progress` as
    :class:`zoo.progress.Progress` (True: a bar on a terminal, "lines", or False: silent).

    Returns the task's metrics (see the module docstring) with ``num_examples``; accuracies in [0, 1].
    The batches run through a compiled forward pass of the model with its batch norms folded
    (:func:`zoo.inference.inference_model`): 1.5-1.7x the eager, unfolded model (README).
    """
    from zoo import data as zdata  # tf.data: imported here so that `import zoo` needs no TensorFlow

    task = tasks.task_of(model)
    names = tasks.label_names_of(model)
    source = zdata.open_source(data, split, image_size=model_image_size(model), class_names=names)
    if getattr(source, "task", task.name) != task.name:
        raise ValueError(f"the data is {source.task} but {model.name} is {task.name}")
    if len(source) == 0:
        raise ValueError("the data has no images to evaluate")
    if getattr(source, "labels", None) is not None:
        task.check_labels(source.labels, len(names), "the evaluation data")
    evaluator = task.evaluator(names)
    dataset = zdata.make_dataset(source, batch_size, training=False)
    what = f"evaluating {model.name} on {len(source)} {getattr(source, 'split', None) or split} images"
    shown = Progress(int(np.ceil(len(source) / batch_size)), what, progress, unit="batch")
    forward = inference.inference_model(model, "evaluating")
    for i, (images, labels) in enumerate(dataset):
        logits = forward.predict_on_batch(images)["logits"]  # compiled (tf.function / jit), not eager
        losses = keras.ops.convert_to_numpy(task.loss(labels, logits))
        evaluator.update(np.asarray(logits), np.asarray(labels), losses)
        shown.update(i + 1)
    return evaluator.result()


def format_metrics(name, metrics, per_class=False):
    """Human-readable lines for `metrics` (either task)."""
    if "top1" in metrics:
        lines = [f"{name}: top-1 {metrics['top1']:.2%}  top-5 {metrics['top5']:.2%}  loss {metrics['loss']:.4f}"
                 f"  ({metrics['num_examples']} images)"]
        per = metrics["per_class_accuracy"]
    else:
        auc = f"{metrics['mean_auc']:.4f}" if metrics["mean_auc"] is not None else "-"
        lines = [f"{name}: mean attribute accuracy {metrics['mean_accuracy']:.2%}  (majority-class baseline "
                 f"{metrics['majority_baseline']:.2%})  mean AUC {auc}  loss {metrics['loss']:.4f}"
                 f"  ({metrics['num_examples']} images)"]
        per = metrics["per_attribute_accuracy"]
    if per_class:
        lines += [f"  {acc:7.2%}  {label}" if acc is not None else f"      -   {label} (no images)"
                  for label, acc in per.items()]
    return "\n".join(lines)


def save_confusion_matrix(metrics, path, force=False, title="confusion matrix"):
    """Draw a multiclass result's confusion matrix (rows: true class, columns: predicted; colour:
    images) as a PNG titled with `title` (what was evaluated on which data) and the accuracy; an
    existing `path` is replaced only with `force`."""
    from zoo.explain.figures import pyplot, save_figure

    if "confusion_matrix" not in metrics:
        raise ValueError("a confusion matrix exists for multiclass models only")
    plt = pyplot()
    matrix = np.asarray(metrics["confusion_matrix"])
    names = list(metrics["per_class_accuracy"])
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(names) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="images")
    ax.set_title(f"{title}\ntop-1 {metrics['top1']:.2%} on {metrics['num_examples']} images", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, force, dpi=120)
