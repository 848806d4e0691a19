"""Backend-specific code that the backend-agnostic modules call: fast paths for layers whose
portable Keras form is slow, and device probes. TensorFlow-specific code lives here, outside the
model modules: a model layer asks for a kernel, and where none applies (another backend, another
layout) it gets None and runs its Keras form.
"""

import keras


def has_gpu():
    """Whether the current Keras backend sees a GPU."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def fused_batch_norm(x, gamma, beta, mean, variance, epsilon, training):
    """TensorFlow's fused batch norm (FusedBatchNormV3) of a 4-D channels-last `x`, or None.

    Returns ``(y, batch_mean, batch_variance)`` in training (the variance *biased*, as Keras'
    BatchNormalization keeps it; TensorFlow returns it Bessel-corrected) and ``(y, None, None)``
    in inference. `x` may be bfloat16 / float16 with float32 parameters: the kernel accumulates the
    statistics in float32 and never materialises a float32 copy of `x` (the Keras layer does).
    """
    if keras.backend.backend() != "tensorflow" or len(x.shape) != 4:
        return None
    import tensorflow as tf

    if not training:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean=mean, variance=variance, epsilon=epsilon,
                                                   is_training=False)
        return y, None, None
    y, batch_mean, batch_variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon,
                                                                     is_training=True)
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], batch_variance.dtype)
    return y, batch_mean, batch_variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
