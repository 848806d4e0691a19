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


def fused_batch_norm_pays(channels, dtype):
    """Whether TensorFlow's oneDNN fused batch norm is faster than Keras' separate ops for this
    channel count: it falls off a cliff where the channels do not fill its vector blocks, i.e.
    unless they are a multiple of 16 for 16-bit inputs, of 4 for float32 (or a single channel).

    Measured (training step, forward + backward, 2 threads, batch 128 at 16x16, 2-core Intel Xeon
    with AMX): bfloat16, C=10: fused 18-23 ms against 4.6-5.9 ms for Keras' ops; C=8: 26 / 4.2 ms;
    C=40: 45 / 11 ms; C=16, 32, 48, 64: fused 1.2-4.2 ms against 5-19 ms. float32, C=10: 12-13
    / 4 ms; C=6, 14, 18, 30: 2-2.5x slower fused; C=8, 12, 16, 80, 128: fused 1.2-4x faster.
    (ABN's `att_bn2` has one channel per class: 10 on CIFAR-10; the width-0.125 LBA and width-8
    models have 8-channel stages; the attribute models 40.)
    """
    if channels is None:
        return False
    block = 16 if keras.backend.standardize_dtype(dtype) in ("bfloat16", "float16") else 4
    return channels == 1 or channels % block == 0


def subsample(x, step):
    """``x[:, ::step, ::step, :]`` of a 4-D channels-last `x` with a faster gradient (TensorFlow),
    or None on other backends.

    TensorFlow's gradient of a strided slice (StridedSliceGrad) scatters into a zero tensor and
    took 7-8 ms for a 128x32x32x16 input (float32 and bfloat16, 2-core Intel Xeon); spreading the
    gradient with one pad and a reshape (every `step`-th pixel gets it, the others zero: the
    same numbers) takes 1.8-2 ms. The gradient is built from differentiable ops, so second-order
    gradients (Sharpen Focus, input-gradient explainers) still work.
    """
    if keras.backend.backend() != "tensorflow" or len(x.shape) != 4:
        return None
    import tensorflow as tf

    @tf.custom_gradient
    def strided(x):
        def spread(dy):
            shape = tf.shape(dy)
            padded = tf.pad(dy[:, :, None, :, None, :], [[0, 0], [0, 0], [0, step - 1], [0, 0], [0, step - 1], [0, 0]])
            full = tf.reshape(padded, [shape[0], shape[1] * step, shape[2] * step, shape[3]])
            return full[:, : tf.shape(x)[1], : tf.shape(x)[2], :]  # odd sizes: the last rows / columns got none

        return x[:, ::step, ::step, :], spread

    return strided(x)


def fused_batch_norm(x, gamma, beta, mean, variance, epsilon, training):
    """TensorFlow's fused batch norm (FusedBatchNormV3) of a 4-D channels-last `x`, or None
    (another backend, or a channel count where the kernel is slow: :func:`fused_batch_norm_pays`).

    Returns ``(y, batch_mean, batch_variance)`` in training (the variance *biased*, as Keras'
    BatchNormalization keeps it; TensorFlow returns it Bessel-corrected) and ``(y, None, None)``
    in inference. `x` may be bfloat16 / float16 with float32 parameters: the kernel accumulates the
    statistics in float32 and never materialises a float32 copy of `x` (the Keras layer does).
    """
    if keras.backend.backend() != "tensorflow" or len(x.shape) != 4 or not fused_batch_norm_pays(x.shape[-1], x.dtype):
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
