#!/usr/bin/env python
"""Training and inference throughput (images/s) of the ABN models, variants side by side.

    python scripts/bench.py [--model abn_resnet20] [--batch-size 128] [--steps 20] [--only objective]

Training: the zoo's custom loop (fp32, bfloat16, MirroredStrategy over 2 logical CPU devices)
against ``model.fit`` on the same model and a plain ResNet-20 (no attention branch) with
``model.fit``. Objectives: the custom loop on ``--objective-model`` (``sfocus_resnet20``) with
cross-entropy alone, Sharpen Focus first order and second order (its cost). Inference: Keras
fp32 / bfloat16 against the TFLite export (fp32, float16).
Each variant runs `--warmup` untimed steps, then `--steps` timed ones; the table reports
images/s and the ratio to the first row of its group, which is what to compare on a noisy
machine.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import zoo  # noqa: E402
from zoo import export as zexport  # noqa: E402
from zoo.data import ArraySource  # noqa: E402
from zoo.models import layers as zl  # noqa: E402
from zoo.training.fit import FitModel  # noqa: E402
from zoo.training.loop import TrainConfig, Trainer, dtype_policy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import per_second as timed  # noqa: E402  (images/s of a step after warm-up)


def fake_data(n, size=32, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3)).astype("uint8"), rng.integers(0, num_classes, n)


def ctl_throughput(arch, images, labels, batch, warmup, steps, mixed_precision=None, strategy=None, objective=None,
                   loss_kwargs=None):
    config = TrainConfig(epochs=1000, batch_size=batch, progress=False, mixed_precision=mixed_precision,
                         objective=objective, loss_kwargs=loss_kwargs or {})
    trainer = Trainer(arch, ArraySource(images, labels), config, strategy=strategy)
    iterator = trainer._distributed_epoch(0, 0)
    return timed(lambda: trainer._train_step(iterator), warmup, steps, batch)


def plain_resnet20(num_classes=10):
    """ResNet-20 without the attention branch (reference for the cost of ABN)."""
    inputs = keras.Input((32, 32, 3))
    x = zl.preprocessing(zl.CIFAR_MEAN, zl.CIFAR_STD)(inputs)
    x = zl.conv_bn(x, 16, 3, name="stem")
    for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        x = zl.resnet_stage(x, "basic", planes, 3, stride, f"stage{i + 1}")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def fit_throughput(model, images, labels, batch, warmup, steps, zoo_engine):
    """model.fit images/s: the zoo's fit engine (training core: family loss, decay, metrics) on a
    zoo model, or plain Keras compile/fit on a plain model."""
    n = batch * (warmup + steps)
    images, labels = images[:n].astype("float32"), labels[:n]
    if zoo_engine:
        model = FitModel(model, TrainConfig(batch_size=batch, weight_decay=5e-4), steps_per_epoch=100)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9))
    else:
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch).prefetch(2)
    stamps = []
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: stamps.append(time.perf_counter()))
    model.fit(dataset, epochs=1, verbose=0, callbacks=[clock])  # one fit: no retracing between phases
    return steps * batch / (stamps[-1] - stamps[warmup - 1])


def inference_rows(arch, batch, warmup, steps):
    images, _ = fake_data(batch)
    rows = []
    for precision in (None, "bfloat16"):
        with dtype_policy(precision):
            model = zoo.build(arch)
        infer = tf.function(lambda x, m=model: m(x, training=False))
        x = tf.constant(images.astype("float32"))
        rows.append((f"Keras {precision or 'fp32'}", timed(lambda: infer(x), warmup, steps, batch)))
    model = zoo.build(arch)
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in (None, "float16"):
            path = zexport.export(model, Path(tmp) / f"m{quantize}.tflite", "tflite", quantize)
            runner = zexport.tflite_runner(path)
            rows.append((f"TFLite {quantize or 'fp32'}", timed(lambda: runner(image=images), warmup, steps, batch)))
    return rows


def objective_rows(arch, images, labels, batch, warmup, steps):
    """The same network and loop: cross-entropy alone, then Sharpen Focus first and second order."""
    variants = [("cross-entropy alone", "none", {}), ("Sharpen Focus, first order", "sharpen_focus", {}),
                ("Sharpen Focus, second order", "sharpen_focus", {"second_order": True})]
    return [(f"CTL fp32, {arch}, {name}", ctl_throughput(arch, images, labels, batch, warmup, steps,
                                                          objective=objective, loss_kwargs=kwargs))
            for name, objective, kwargs in variants]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="abn_resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", choices=["train", "objective", "inference"], default=None)
    parser.add_argument("--objective-model", default="sfocus_resnet20", help="network of the objective rows")
    args = parser.parse_args()
    batch, warmup, steps = args.batch_size, args.warmup, args.steps
    images, labels = fake_data(batch * (warmup + steps + 2))

    training = [] if args.only in ("inference", "objective") else [
        ("CTL fp32, 1 device", ctl_throughput(args.model, images, labels, batch, warmup, steps)),
        ("CTL bfloat16, 1 device", ctl_throughput(args.model, images, labels, batch, warmup, steps, "bfloat16")),
        ("CTL fp32, MirroredStrategy (2 logical CPUs)", ctl_throughput(
            args.model, images, labels, batch, warmup, steps, None,
            tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))),
        ("model.fit fp32 (zoo fit engine), same model", fit_throughput(
            zoo.build(args.model), images, labels, batch, warmup, steps, zoo_engine=True)),
    ]
    if args.model == "abn_resnet20" and args.only is None or args.only == "train":
        training.append(("model.fit fp32, plain ResNet-20 (no attention)",
                         fit_throughput(plain_resnet20(), images, labels, batch, warmup, steps, zoo_engine=False)))
    objectives = [] if args.only not in (None, "objective") else objective_rows(
        args.objective_model, images, labels, batch, warmup, steps)
    inference = [] if args.only in ("train", "objective") else inference_rows(args.model, batch, warmup, steps)

    print(f"\nbatch {batch}, {steps} timed steps after {warmup} warm-up steps (--model {args.model}, "
          f"--objective-model {args.objective_model})\n")
    print("| mode | variant | images/s | ratio |\n| --- | --- | ---: | ---: |")
    for mode, rows in (("train", training), ("train objective", objectives), ("inference", inference)):
        base = rows[0][1] if rows else 1.0
        for name, value in rows:
            print(f"| {mode} | {name} | {value:.0f} | {value / base:.2f} |")


if __name__ == "__main__":
    main()
