"""Losses shared by the families (backend-agnostic).

A family's loss has the signature ``loss(y_true, outputs, task, **kwargs) -> per-example loss``
and is registered with its architectures (:func:`zoo.registry.register_model`); `task`
(:mod:`zoo.tasks`) turns logits into a loss, so one family loss serves single- and multi-label
training. The training core averages it over the global batch.
"""


def logits_loss(y_true, outputs, task, label_smoothing=0.0):
    """The task's loss on the ``logits`` output (families without auxiliary heads)."""
    return task.loss(y_true, outputs["logits"], label_smoothing)
