#!/usr/bin/env python
"""What the oneDNN crash workaround costs (README note): training images/s of ABN ResNet-20 with
strided 1x1 convolutions built as subsampling + 1x1 convolution (the zoo's way) against the plain
strided convolution, with oneDNN on and off (``TF_ENABLE_ONEDNN_OPTS=0``, the other way out).

    python scripts/bench_onednn_workaround.py [--rounds 3] [--steps 10]

Each variant runs in its own process (the variable is read when TensorFlow loads), rounds
interleaved; medians of images/s, ratio to the zoo's default (subsample, oneDNN on). The strided
variant is only run with oneDNN off at 60 px, where it would crash with it on (AVX512-BF16 CPUs).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {"cifar 32px width 16, batch 128": (32, 16, 128), "cluttered 60px width 8, batch 64": (60, 8, 64)}


def measure(size, width, batch, strided, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np
    import tensorflow as tf

    import zoo
    from zoo.models import layers as zl

    if strided:  # the plain strided 1x1 convolution, as before the workaround
        def conv_bn(x, filters, kernel_size, strides=1, name="", relu=True, sync_bn=False):
            x = zl.conv(filters, kernel_size, strides, name=f"{name}_conv")(x)
            x = zl.batch_norm(f"{name}_bn", sync_bn)(x)
            return tf.keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x

        zl.conv_bn = conv_bn
    model = zoo.build("abn_resnet20", num_classes=10, input_shape=(size, size, 3), width=width)
    optimizer = tf.keras.optimizers.SGD(0.01)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    y = tf.constant(np.arange(batch) % 10)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, out["logits"], True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step().numpy()
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        size, width, batch, strided = map(int, args.worker)
        print(json.dumps(measure(size, width, batch, bool(strided), args.steps)))
        return
    variants = [("subsample (zoo), oneDNN on", "1", 0), ("subsample (zoo), oneDNN off", "0", 0),
                ("strided 1x1 conv, oneDNN off", "0", 1), ("strided 1x1 conv, oneDNN on", "1", 1)]
    results = {}
    for _ in range(args.rounds):
        for case, (size, width, batch) in CASES.items():
            for label, onednn, strided in variants:
                if strided and onednn == "1" and size >= 56:
                    continue  # crashes on AVX512-BF16 CPUs
                env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn}
                out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--worker", str(size),
                                      str(width), str(batch), str(strided)], env=env, capture_output=True, text=True)
                value = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else float("nan")
                results.setdefault((case, label), []).append(value)
    print("| case | variant | train images/s (median) | ratio |\n| --- | --- | ---: | ---: |")
    for case in CASES:
        base = statistics.median(results[(case, variants[0][0])])
        for label, _, _ in variants:
            if (case, label) in results:
                value = statistics.median(results[(case, label)])
                print(f"| {case} | {label} | {value:.0f} | {value / base:.2f} |")


if __name__ == "__main__":
    main()
