"""Top-1 / top-5 accuracy and loss of a model on a data source (``zoo evaluate``)."""

import keras
import numpy as np

from zoo.hub import model_image_size


def evaluate(model, data, batch_size=500, progress=True, split="test"):
    """Evaluate `model` on `data` (anything :func:`zoo.data.open_source` takes).

    Returns ``{"top1", "top5", "loss", "num_examples"}``: accuracies of the ``logits`` output
    in [0, 1] and its mean softmax cross-entropy.
    """
    from zoo import data as zdata  # tf.data: imported here so that `import zoo` needs no TensorFlow

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

