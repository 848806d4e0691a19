"""The TensorFlow fast paths against their Keras forms: the fused batch-norm kernel against Keras'
BatchNormalization (same numbers, statistics and gradients, and the fallbacks where it does not
apply or does not pay), and the subsampling layer's gradient against the strided slice's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import kernels
from zoo.models import layers as zl


def pair(channels=4, **kwargs):
    """Keras' BatchNormalization and the zoo's, with the same (non-trivial) parameters."""
    rng = np.random.default_rng(0)
    ours, theirs = zl.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs), keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, **kwargs)
    for layer in (ours, theirs):
        layer.build((None, 5, 6, channels))
    values = [rng.uniform(0.5, 2, channels), rng.normal(0, 1, channels), rng.normal(0, 1, channels),
              rng.uniform(0.5, 2, channels)]
    for layer in (ours, theirs):
        for variable, value in zip(layer.weights, values):
            variable.assign(value.astype("float32"))
    return ours, theirs


def test_fused_batch_norm_matches_keras_in_training_and_inference():
    ours, theirs = pair()
    x = tf.constant(np.random.default_rng(1).normal(2, 3, (3, 5, 6, 4)).astype("float32"))
    for training in (True, False):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            a, b = ours(x, training=training), theirs(x, training=training)
            weights = tf.constant(np.random.default_rng(2).normal(size=a.shape).astype("float32"))
            loss_a, loss_b = tf.reduce_sum(a * weights), tf.reduce_sum(b * weights)
        np.testing.assert_allclose(a, b, atol=1e-5)
        for grad_a, grad_b in zip(tape.gradient(loss_a, [x, ours.gamma, ours.beta]),
                                  tape.gradient(loss_b, [x, theirs.gamma, theirs.beta])):
            np.testing.assert_allclose(grad_a, grad_b, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, atol=1e-6)
        np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-5)  # biased, as Keras
    assert not np.allclose(ours.moving_mean, np.random.default_rng(0).normal(0, 1, 4))  # training updated it


@pytest.mark.parametrize("channels", [16, 10])  # 16: the fused kernel; 10: Keras' ops (the kernel is slow there)
def test_batch_norm_under_bfloat16_keeps_float32_statistics(channels):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        ours, theirs = pair(channels)
    finally:
        keras.config.set_dtype_policy("float32")
    x = tf.constant(np.random.default_rng(1).normal(2, 3, (3, 5, 6, channels)).astype("float32"))
    a, b = ours(x, training=True), theirs(x, training=True)
    assert a.dtype == tf.bfloat16 and ours.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(a, tf.float32), tf.cast(b, tf.float32), atol=0.1)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=2e-2)


@pytest.mark.parametrize("channels, dtype, fused", [
    (16, "bfloat16", True), (64, "bfloat16", True), (1, "bfloat16", True), (10, "bfloat16", False),
    (8, "bfloat16", False), (40, "float16", False), (8, "float32", True), (12, "float32", True),
    (10, "float32", False), (30, "float32", False)])
def test_the_fused_kernel_runs_only_where_it_pays(channels, dtype, fused):
    x = tf.zeros((2, 3, 3, channels), dtype)
    gamma, beta = tf.ones(channels), tf.zeros(channels)
    result = kernels.fused_batch_norm(x, gamma, beta, gamma, gamma, 1e-3, training=True)
    assert (result is not None) == fused == kernels.fused_batch_norm_pays(channels, dtype)


@pytest.mark.parametrize("size, step", [((8, 8), 2), ((7, 9), 2), ((9, 10), 3)])
def test_subsample_gradient_matches_the_strided_slice(size, step):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, *size, 3)).astype("float32"))
    layer = zl.Subsample(step)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            ours, reference = layer(x), x[:, ::step, ::step, :]
            weights = tf.constant(rng.normal(size=ours.shape).astype("float32"))
            loss_ours, loss_reference = tf.reduce_sum(ours * weights) ** 2, tf.reduce_sum(reference * weights) ** 2
        grad_ours, grad_reference = tape.gradient(loss_ours, x), tape.gradient(loss_reference, x)
        square_ours, square_reference = tf.reduce_sum(grad_ours ** 2), tf.reduce_sum(grad_reference ** 2)
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_allclose(grad_ours, grad_reference, rtol=1e-6)
    assert np.count_nonzero(grad_ours) == ours.shape[1] * ours.shape[2] * 6  # only the sampled pixels
    np.testing.assert_allclose(outer.gradient(square_ours, x), outer.gradient(square_reference, x), rtol=1e-5)


@pytest.mark.parametrize("shape, kwargs", [((3, 4), {}), ((3, 5, 6, 4), {"synchronized": True})])
def test_where_the_kernel_does_not_apply_keras_runs(shape, kwargs):
    ours = zl.BatchNormalization(**kwargs)
    theirs = keras.layers.BatchNormalization(**kwargs)
    x = tf.constant(np.random.default_rng(1).normal(2, 3, shape).astype("float32"))
    np.testing.assert_array_equal(ours(x, training=True), theirs(x, training=True))
    np.testing.assert_array_equal(ours.moving_variance, theirs.moving_variance)


def test_a_keras_batch_norm_weight_file_loads_into_the_zoo_layer(tmp_path):
    def model(bn):
        inputs = keras.Input((5, 6, 4))
        return keras.Model(inputs, bn(momentum=0.9)(keras.layers.Conv2D(4, 3)(inputs)))

    saved = model(keras.layers.BatchNormalization)
    saved.layers[-1].moving_mean.assign(np.arange(4, dtype="float32"))
    saved.save_weights(tmp_path / "w.weights.h5")
    loaded = model(zl.BatchNormalization)
    loaded.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(loaded.layers[-1].moving_mean, np.arange(4))
