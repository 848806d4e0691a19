#!/usr/bin/env python
"""Training throughput (images/s) of the model.fit engine on any Keras backend (the GPU machines).

    KERAS_BACKEND=jax python scripts/bench_fit.py [--batch-size 128] [--steps 50] [--models abn_resnet20 ...]

For each model: the compiled train step alone (`train_on_batch` on a batch already in memory,
bfloat16 and float32) and the input pipeline alone (`zoo.training.fit.ArrayBatches`: shuffle, padded crop,
flip in numpy), in images/s. When the pipeline is slower than the step, training is input-bound.
Ratios are to the first row, which is what to compare on a shared machine.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo import registry  # noqa: E402
from zoo.data.sources import ArraySource  # noqa: E402
from zoo.training import fit as zfit  # noqa: E402
from zoo.training.recipe import TrainConfig, dtype_policy  # noqa: E402

MODELS = ["abn_resnet20", "ltpa_vgg16:0.25", "ltpa_vgg_att3:0.25", "ltpa_vgg16:1", "ltpa_vgg_att3:1"]


def tf_threads(threads):
    """TensorFlow on `threads` intra-op threads and one inter-op thread, as every benchmark measures;
    in a process where TensorFlow already runs (a test) a note instead of an error."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        print(f"TensorFlow already started: --threads {threads} not applied", file=sys.stderr)


def interleaved_seconds(calls, rounds, steps=1):
    """Seconds per call of each of `calls` (key -> a no-argument function), one mean over `steps`
    calls per round, the variants taking turns in every round (so a noisy machine hits all alike)."""
    seconds = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            start = time.perf_counter()
            for _ in range(steps):
                call()
            seconds[key].append((time.perf_counter() - start) / steps)
    return seconds


def per_second(step, warmup, steps, batch):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def zoo_step(arch, mode, precision, images, labels, batch, task="multiclass", num_classes=10, loss_kwargs=None,
             jit_compile=False):
    """One step of `arch` as a no-argument function (TensorFlow): the training core's step
    (:class:`zoo.training.loop.Trainer`, batches of `images` / `labels`) or, for ``mode="infer"``,
    the model in inference mode (batch norms folded) on the first `batch` images in a ``tf.function``; `precision` is
    ``fp32`` or ``bfloat16``, `jit_compile` XLA for either. Shared by the side-by-side benchmarks, the XLA
    benchmark and the step profiler."""
    import tensorflow as tf

    import zoo
    from zoo.training.loop import Trainer

    mixed = None if precision == "fp32" else "bfloat16"
    if mode == "train":
        config = TrainConfig(epochs=1000, batch_size=batch, progress=False, mixed_precision=mixed,
                             loss_kwargs=dict(loss_kwargs or {}), jit_compile=jit_compile)
        trainer = Trainer(arch, ArraySource(images, labels, task=task), config)
        iterator = trainer._distributed_epoch(0, 0)
        return lambda: trainer._train_step(iterator)
    with dtype_policy(mixed):  # inference as zoo evaluate / export run it: batch norms folded
        model = zoo.fold_batch_norm(zoo.build(arch, num_classes=num_classes))
    infer = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
    x = tf.constant(images[:batch].astype("float32"))
    return lambda: infer(x)["logits"].numpy()


def train_step_throughput(spec, images, labels, batch, warmup, steps, precision):
    arch, _, width = spec.partition(":")
    kwargs = {"num_classes": 10, **({"width": float(width)} if width else {})}
    with dtype_policy(None if precision == "float32" else precision):
        net = registry.build(arch, **kwargs)
    trainer = zfit.FitModel(net, TrainConfig(batch_size=batch, weight_decay=5e-4), steps_per_epoch=100)
    trainer.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    x, y = images[:batch].astype("float32"), labels[:batch]

    def step():
        logs = trainer.train_on_batch(x, y, return_dict=True)
        float(logs["loss"])  # waits for the device

    return per_second(step, warmup, steps, batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS, help="ARCH or ARCH:WIDTH")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["bfloat16", "float32"])
    args = parser.parse_args()
    batch = args.batch_size
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (batch * 20, 32, 32, 3)).astype("uint8"), rng.integers(0, 10, batch * 20)
    pipeline = zfit.ArrayBatches(ArraySource(images, labels), batch, training=True)
    rows = [("input pipeline (ArrayBatches: shuffle, crop, flip)",
             per_second(lambda: pipeline[np.random.randint(len(pipeline))], 2, args.steps, batch))]
    for spec in args.models:
        for precision in args.precisions:
            rows.append((f"train step {spec} {precision}",
                         train_step_throughput(spec, images, labels, batch, args.warmup, args.steps, precision)))
    print(f"\n{keras.backend.backend()} backend, batch {batch}, {args.steps} timed steps after {args.warmup} warm-up\n")
    print("| variant | images/s | ratio |\n| --- | ---: | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.0f} | {value / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
