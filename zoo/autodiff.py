"""The one place with backend-specific gradient code: gradients of scores with respect to an
inner feature map, computed *inside* a train step and themselves differentiable, so that a loss
can be built from them and back-propagated (Sharpen Focus builds Grad-CAM this way, Wang et al.
2019). Everything else in the zoo differentiates through the engines.

:func:`gradients` returns ``[d score(fn(features)) / d features for score in scores]``, with
``fn`` run once in a stateless scope: its state updates (BatchNorm moving statistics) are
discarded, so a caller's own forward pass updates them exactly once; the variables keep the
values of the enclosing step (JAX's stateless train step included).
- TensorFlow: a (persistent) ``GradientTape`` nested in the train step's tape, which records it;
- JAX: one ``jax.vjp`` of the scores, pulled back once per score;
- PyTorch: ``torch.autograd.grad(..., create_graph=True)`` per score.
"""

import contextlib

import keras


def gradients(fn, features, scores, variables=()):
    """``[d score(fn(features)) / d features for score in scores]`` (each score a scalar function
    of `fn`'s outputs); `variables` are those `fn` reads."""
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise NotImplementedError(f"feature gradients are not implemented for the {backend} backend")
    with stateless(variables):
        return BACKENDS[backend](fn, features, list(scores))


def stateless(variables):
    """A scope where `variables` read the enclosing step's current values and assignments to
    them (BatchNorm statistics, seed generators) are dropped."""
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    outer = get_stateless_scope()
    if outer is None:
        return keras.StatelessScope() if variables else contextlib.nullcontext()
    current = [(v, outer.get_current_value(v)) for v in variables]
    return keras.StatelessScope(state_mapping=[(v, value) for v, value in current if value is not None])


def _tensorflow(fn, features, scores):
    import tensorflow as tf

    with tf.GradientTape(persistent=len(scores) > 1) as tape:
        tape.watch(features)
        outputs = fn(features)
        values = [score(outputs) for score in scores]
    return [tape.gradient(value, features) for value in values]


def _jax(fn, features, scores):
    import jax
    import jax.numpy as jnp

    values, pullback = jax.vjp(lambda f: jnp.stack([score(fn(f)) for score in scores]), features)
    return [pullback(jnp.eye(len(scores), dtype=values.dtype)[k])[0] for k in range(len(scores))]


def _torch(fn, features, scores):
    import torch

    if not features.requires_grad:
        features = features.detach().requires_grad_(True)
    outputs = fn(features)
    values = [score(outputs) for score in scores]
    return [torch.autograd.grad(value, features, create_graph=True, retain_graph=True)[0] for value in values]


BACKENDS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
