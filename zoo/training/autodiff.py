"""The one place with backend-specific gradient code: the gradient of a score with respect to an
inner feature map, computed *inside* a train step and itself differentiable, so a loss can be
built from it and back-propagated (Sharpen Focus builds Grad-CAM this way, Wang et al. 2019,
Eq. 1-2). Everything else in the zoo differentiates through the engines.

:func:`outputs_and_gradient` returns ``(fn(features), d score(fn(features)) / d features)``:
- TensorFlow: a nested ``GradientTape`` (the outer tape of the train step records the inner
  gradient computation, so the result is differentiable);
- JAX: ``jax.grad`` of the head; the head runs once more for it, inside a stateless scope that
  discards its state updates (BatchNorm statistics are updated once, by the plain forward pass);
- PyTorch: ``torch.autograd.grad(..., create_graph=True)``.
"""

import keras


def outputs_and_gradient(fn, features, score, variables=()):
    """``(outputs, gradient)`` of ``outputs = fn(features)`` and ``score(outputs)`` (a scalar);
    `variables` are those `fn` reads (JAX re-reads them from the train step's stateless scope)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow(fn, features, score)
    if backend == "jax":
        return _jax(fn, features, score, variables)
    if backend == "torch":
        return _torch(fn, features, score)
    raise NotImplementedError(f"feature gradients are not implemented for the {backend} backend")


def _tensorflow(fn, features, score):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(features)
        outputs = fn(features)
        value = score(outputs)
    return outputs, tape.gradient(value, features)


def _jax(fn, features, score, variables):
    import jax

    outputs = fn(features)
    outer = keras.src.backend.common.stateless_scope.get_stateless_scope()

    def scored(f):
        # the train step's current values of the variables; the head's state updates are discarded
        current = [(v, v.value if outer is None else outer.get_current_value(v)) for v in variables]
        with keras.StatelessScope(state_mapping=[(v, value) for v, value in current if value is not None]):
            return score(fn(f))

    return outputs, jax.grad(scored)(features)


def _torch(fn, features, score):
    import torch

    if not features.requires_grad:
        features = features.detach().requires_grad_(True)
    outputs = fn(features)
    (gradient,) = torch.autograd.grad(score(outputs), features, create_graph=True)
    return outputs, gradient
