"""Top-1 / top-5 accuracy and loss of a model on a data source (``zoo evaluate``)."""

import keras
import numpy as np

from zoo import data as zdata


def evaluate(model, data, batch_size=500, progress=True, split="test"):
    """Evaluate `model` on `data` (anything :func:`zoo.data.open_source` takes).

    Returns ``{"top1", "top5", "loss", "num_examples"}``: accuracies of the ``logits`` output
    in [0, 1] and its mean softmax cross-entropy.
    """
    source = zdata.open_source(data, split, image_size=model_image_size(model))
    num_classes = model.output["logits"].shape[-1]
    if len(source.class_names) > num_classes:
        raise ValueError(f"the data has {len(source.class_names)} classes but the model predicts {num_classes}")
    correct1 = correct5 = total = 0
    loss_sum = 0.0
    dataset = zdata.make_dataset(source, batch_size, training=False)
    bar = keras.utils.Progbar(int(np.ceil(len(source) / batch_size))) if progress else None
    for i, (images, labels) in enumerate(dataset):
        logits = np.asarray(model(images, training=False)["logits"], dtype="float32")
        labels = np.asarray(labels)
        top5 = np.argsort(-logits, axis=-1)[:, :5]
        correct1 += int(np.sum(top5[:, 0] == labels))
        correct5 += int(np.sum(np.any(top5 == labels[:, None], axis=-1)))
        loss_sum += float(np.sum(keras.ops.convert_to_numpy(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))))
        total += len(labels)
        if bar is not None:
            bar.update(i + 1)
    return {"top1": correct1 / total, "top5": correct5 / total, "loss": loss_sum / total, "num_examples": total}


def model_image_size(model):
    """(height, width) the model was built for; (32, 32) for models built with a dynamic size."""
    config = getattr(model, "zoo_config", {})
    if "image_size" in config:
        return tuple(config["image_size"])
    h, w = model.input.shape[1:3]
    return (h or 32, w or 32)
