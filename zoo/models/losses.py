"""Losses shared by the families (backend-agnostic: keras.ops / keras.losses only).

A family's loss has the signature ``loss(y_true, outputs, **kwargs) -> per-example loss`` and is
registered with its architectures (:func:`zoo.registry.register_model`); the training loop
averages it over the global batch.
"""

import keras


def classification_loss(y_true, logits, label_smoothing=0.0):
    """Per-example softmax cross-entropy for integer (B,) or one-hot / mixed (B, K) targets."""
    if len(y_true.shape) == 1:
        if not label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        y_true = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), logits.shape[-1])
    return keras.losses.categorical_crossentropy(y_true, logits, from_logits=True, label_smoothing=label_smoothing)


def logits_loss(y_true, outputs, label_smoothing=0.0):
    """Cross-entropy of the ``logits`` output (families without auxiliary heads)."""
    return classification_loss(y_true, outputs["logits"], label_smoothing)
