#!/usr/bin/env python
"""The zoo's TensorFlow fast paths (:mod:`zoo.kernels`) against what they replace (issue 19):

- ``ops``: forward + backward milliseconds of batch norm in training, TensorFlow's fused kernel
  against Keras' separate ops, by channel count and precision (which :func:`zoo.kernels.
  fused_batch_norm_pays` encodes), and of the subsampling layer with StridedSliceGrad against the
  zoo's pad gradient;
- ``step``: a model's whole train step with the fast paths as they are against the earlier choice
  (fused batch norm at every channel count, StridedSliceGrad), both built in one process and timed
  alternately, step by step; the speed-up is the median of the paired ratios.

    python scripts/bench_kernels.py [--only ops step] [--models abn_resnet20 ...]
        [--precisions bfloat16 fp32] [--batch-size 128] [--pairs 20] [--clock cpu|wall]

``--clock cpu`` (the default) times each step by the process's CPU time, which a noisy shared
machine disturbs less than wall time (both threads are busy during a step, so the images/s it
gives are about half the wall-clock ones; compare the ratios).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_abn_official import fake_batch  # noqa: E402  (synthetic images and labels)
from bench_fit import per_second, tf_threads, zoo_step  # noqa: E402  (calls/s after warm-up; the core's step)

CHANNELS = (8, 10, 16, 24, 40, 64)
MODELS = {"abn_resnet20": (32, 10, "multiclass"), "abn_multitask_faceresnet20": (64, 40, "multilabel"),
          "lba_resnet18_w0125": (32, 10, "multiclass")}


def milliseconds(function, *args, warmup=5, calls=30):
    return 1000.0 / per_second(lambda: function(*args), warmup, calls, 1)


def forward_backward(function):
    """A tf.function: the gradient of ``function(x, *params)`` for the output gradient `dy`."""
    import tensorflow as tf

    @tf.function
    def step(x, dy, *params):
        with tf.GradientTape() as tape:
            tape.watch([x, *params])
            y = function(x, *params)
        return tape.gradient(y, [x, *params], output_gradients=dy)

    return step


def op_rows(precisions, batch):
    """Markdown rows: batch norm by channels (fused / Keras ops), subsampling (slice / pad)."""
    import tensorflow as tf

    from zoo import kernels

    def fused(x, gamma, beta):
        return tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-5, is_training=True)[0]

    def keras_ops(x, gamma, beta):
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, [0, 1, 2])
        return tf.cast(tf.nn.batch_normalization(x32, mean, variance, beta, gamma, 1e-5), x.dtype)

    rows = ["| op | precision | shape | TensorFlow's kernel (ms) | replacement (ms) | zoo uses |",
            "| --- | --- | --- | ---: | ---: | --- |"]
    for precision in precisions:
        dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
        for channels in CHANNELS:
            shape = (batch, 16, 16, channels)
            x, dy = tf.random.normal(shape, dtype=dtype), tf.random.normal(shape, dtype=dtype)
            gamma, beta = tf.ones(channels), tf.zeros(channels)
            times = [milliseconds(forward_backward(f), x, dy, gamma, beta) for f in (fused, keras_ops)]
            choice = "fused" if kernels.fused_batch_norm_pays(channels, dtype.name) else "Keras ops"
            rows.append(f"| batch norm (train) | {precision} | {shape} | {times[0]:.2f} | {times[1]:.2f} | {choice} |")
        shape = (batch, 32, 32, 16)
        x = tf.random.normal(shape, dtype=dtype)
        dy = tf.random.normal((batch, 16, 16, 16), dtype=dtype)
        times = [milliseconds(forward_backward(f), x, dy) for f in (lambda v: v[:, ::2, ::2, :],
                                                                   lambda v: kernels.subsample(v, 2))]
        rows.append(f"| subsample 2 (slice / pad gradient) | {precision} | {shape} | {times[0]:.2f} | "
                    f"{times[1]:.2f} | pad |")
    return rows


def paired_step(model, precision, batch, pairs, clock):
    """(earlier images/s, current images/s, median paired speed-up, its range) of `model`'s train step."""
    from zoo import kernels

    size, num_classes, task = MODELS.get(model, (32, 10, "multiclass"))
    images, labels = fake_batch(batch * 40, size, num_classes, task == "multilabel")
    current = kernels.fused_batch_norm_pays, kernels.subsample
    kernels.fused_batch_norm_pays, kernels.subsample = (lambda channels, dtype: True), (lambda x, step: None)
    try:  # the step is traced on its first call: with the earlier choices
        earlier = zoo_step(model, "train", precision, images, labels, batch, task, num_classes)
        for _ in range(3):
            earlier()
    finally:
        kernels.fused_batch_norm_pays, kernels.subsample = current
    now = zoo_step(model, "train", precision, images, labels, batch, task, num_classes)
    for _ in range(3):
        now()
    read_clock = time.process_time if clock == "cpu" else time.perf_counter

    def timed(step):
        start = read_clock()
        result = step()
        if hasattr(result, "numpy"):
            result.numpy()
        return read_clock() - start

    times = {"earlier": [], "now": []}
    for i in range(pairs):
        order = ("earlier", "now") if i % 2 else ("now", "earlier")
        for name in order:
            times[name].append(timed(earlier if name == "earlier" else now))
    ratios = [a / b for a, b in zip(times["earlier"], times["now"])]
    return (batch / statistics.median(times["earlier"]), batch / statistics.median(times["now"]),
            statistics.median(ratios), (min(ratios), max(ratios)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=["ops", "step"], default=["ops", "step"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", choices=["bfloat16", "fp32"], default=["bfloat16", "fp32"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args()
    from bench_torch import machine
    tf_threads(args.threads)
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, flags {' '.join(info['flags'])}; {info['versions']}")
    if "ops" in args.only:
        print("\n" + "\n".join(op_rows(args.precisions, args.batch_size)))
    if "step" in args.only:
        print(f"\n| model | precision | earlier (img/s, {args.clock} clock) | now | paired speed-up (range) |")
        print("| --- | --- | ---: | ---: | ---: |")
        for model in args.models:
            batch = min(args.batch_size, 32) if model.startswith("lba") else args.batch_size
            for precision in args.precisions:
                earlier, now, ratio, (low, high) = paired_step(model, precision, batch, args.pairs, args.clock)
                print(f"| {model} (batch {batch}) | {precision} | {earlier:.1f} | {now:.1f} | {ratio:.2f}x "
                      f"({low:.2f}-{high:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
