"""Grad-CAM, written once (keras.ops, differentiable, every backend): the post-hoc explainers
(:mod:`zoo.explain.methods`) draw it, and training objectives (Sharpen Focus, Wang et al. 2019)
back-propagate through it. It sits below both: it imports neither the models nor ``zoo.explain``.

- :func:`class_score`: the summed score of chosen classes, the scalar whose gradient is taken;
- :func:`gradcam_from`: Grad-CAM from feature maps and that gradient (Selvaraju et al. 2017,
  Eq. 1-2; optionally the positive-gradient weights of the Sharpen Focus ports);
- :func:`gradcam_plus_plus_from`: Grad-CAM++ (Chattopadhay et al. 2018, Eq. 19);
- :func:`confusing_class`: the most confusing class per example (Sharpen Focus);
- :class:`TapGradients`: a model's feature maps at declared taps and the gradients of chosen
  class scores with respect to them, in one forward pass (what explainers and losses read).
"""

import keras
from keras import ops

from zoo import autodiff, registry
from zoo.errors import InvalidInput


def class_score(logits, labels):
    """Sum over the batch of each example's score (logit) for its class: integer labels (B,), or
    label weights (B, K) (one-hot, mixed or multi-hot). Examples are independent, so the gradient
    of the sum holds each example's own gradient."""
    logits = ops.cast(logits, "float32")
    if len(labels.shape) == 1:
        labels = ops.one_hot(ops.cast(labels, "int32"), logits.shape[-1])
    return ops.sum(logits * ops.cast(labels, "float32"))


def gradcam_from(features, gradient, positive_gradients=False):
    """Grad-CAM (B, h, w) of feature maps (B, h, w, C) and ``dS/dfeatures``:
    ``ReLU(sum_k alpha_k F^k)`` with ``alpha_k`` the spatial mean of the gradient (Eq. 1-2), or of
    its positive part with `positive_gradients` (``GAP(ReLU(dS/dF))``, both Sharpen Focus ports)."""
    if positive_gradients:
        gradient = ops.relu(gradient)
    weights = ops.mean(gradient, axis=(1, 2), keepdims=True)  # alpha_k (Eq. 1)
    return ops.relu(ops.sum(weights * features, axis=-1))  # Eq. 2


def gradcam_plus_plus_from(features, gradient, score):
    """Grad-CAM++ (B, h, w) with the exponential of the score `score` (B,): the closed-form alphas
    of Chattopadhay et al. Eq. 19; ``exp(S)`` scales each image's map only."""
    first = ops.exp(score)[:, None, None, None] * gradient
    second, third = gradient**2, gradient**3
    denominator = 2.0 * second + third * ops.sum(features, axis=(1, 2), keepdims=True)
    alphas = second / ops.where(denominator != 0, denominator, ops.ones_like(denominator))
    norm = ops.sum(alphas, axis=(1, 2), keepdims=True)
    alphas = alphas / ops.where(norm != 0, norm, ops.ones_like(norm))
    weights = ops.sum(ops.relu(first) * alphas, axis=(1, 2), keepdims=True)
    return ops.relu(ops.sum(weights * features, axis=-1))


def confusing_class(logits, labels):
    """The most confusing class of each example (B,) int32: the top-1 prediction when it is wrong,
    else the top-2, i.e. the highest-scoring class other than the true one (Sharpen Focus). Ties
    go to the lowest class index, as ``argmax`` does. Soft labels (B, K) (mixup, label
    smoothing): the true class is the most weighted one."""
    logits = ops.cast(logits, "float32")
    if len(labels.shape) == 2:
        labels = ops.argmax(labels, axis=-1)
    true = ops.one_hot(ops.cast(labels, "int32"), logits.shape[-1])
    return ops.cast(ops.argmax(ops.where(true > 0, -float("inf"), logits), axis=-1), "int32")


CLASS_CHOOSERS = {"true": lambda logits, labels: labels, "confusing": confusing_class}


def tap_output(model, name):
    """The symbolic output of layer `name` inside `model`'s graph. For a nested model (a
    ``keras.applications`` backbone declared as a tap) ``.output`` is its own graph's output, not
    connected to `model`'s input: the node of its call that belongs to `model`'s graph is used
    (Keras keys a graph's nodes ``<id(layer)>_ib-<index>``; cutting models adds other nodes)."""
    layer = model.get_layer(name)
    if not isinstance(layer, keras.Model):
        return layer.output
    for index, node in enumerate(layer._inbound_nodes):
        if f"{id(layer)}_ib-{index}" in model._nodes:
            outputs = node.output_tensors
            return outputs[0] if len(outputs) == 1 else outputs
    raise ValueError(f"layer {name!r} is not called inside {model.name}")


def tap_layer(model, tap):
    """The layer name of `tap`: ``"gradcam"`` / ``"inner"`` resolve to the declared layers (unless
    the model has a layer of that very name)."""
    if tap not in ("gradcam", "inner") or any(layer.name == tap for layer in model.layers):
        return tap
    info = registry.feature_info(model)
    layer = info.gradcam_layer if tap == "gradcam" else info.inner_layer
    if layer is None:
        raise InvalidInput(f"{model.name} declares no {tap} layer (FeatureInfo.{tap}_layer); name a layer instead")
    return layer


class TapGradients:
    """``tapped(images, labels, training)``: the model's outputs plus, for a
    :class:`zoo.registry.GradientRequest`, ``features/<alias>`` and ``gradients/<alias>/<class>``.

    One forward pass gives the outputs and every tap's features (state updates made once); per
    tap the rest of the network runs once more, statelessly, for the gradients of the class
    scores (:func:`zoo.autodiff.gradients`), kept differentiable only for ``second_order``."""

    def __init__(self, model, request):
        self.model, self.request = model, request
        self.aliases = [alias for alias, _ in request.taps]
        features = [tap_output(model, tap_layer(model, tap)) for _, tap in request.taps]
        self.tapped = keras.Model(model.input, [model.output, *features])
        self.heads = [keras.Model([model.input, f], model.output) for f in features]
        self.classes = [(c, CLASS_CHOOSERS[c]) if isinstance(c, str) else tuple(c) for c in request.classes]

    def __call__(self, images, labels, training=True):
        images, labels = ops.convert_to_tensor(images), ops.convert_to_tensor(labels)
        outputs, *features = self.tapped(images, training=training)
        logits = ops.stop_gradient(outputs["logits"])
        chosen = [chooser(logits, labels) for _, chooser in self.classes]
        scores = [lambda out, c=c: class_score(out["logits"], c) for c in chosen]
        result = dict(outputs)
        for alias, head, f in zip(self.aliases, self.heads, features):
            grads = autodiff.gradients(lambda x, head=head: head([images, x], training=training), f, scores,
                                       self.model.variables)
            result[f"features/{alias}"] = f
            for (name, _), gradient in zip(self.classes, grads):
                result[f"gradients/{alias}/{name}"] = gradient if self.request.second_order else ops.stop_gradient(
                    gradient)
        return result
