#!/usr/bin/env python
"""XLA against TensorFlow's graph (oneDNN) on this machine (issue 19): the training core's step
(``TrainConfig(jit_compile=...)``, ``zoo train --jit-compile on``) and folded inference (a
``tf.function`` with and without ``jit_compile``), images/s, with the first call (tracing plus
compiling) reported apart. All variants of a model are built in one process and timed in
interleaved rounds (medians; ratios, not absolute times, are what to compare).

    python scripts/bench_xla.py [--models abn_resnet20 ...] [--precisions auto|fp32 bfloat16]
        [--batch-size 128] [--steps 3] [--rounds 3] [--threads 2] [--json F]

XLA under tf.distribute with more than one replica is not measured: synchronized batch norm and
the gradient all-reduce do not compile, so the loop refuses it (one replica only).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_abn_official import EXTRA_MODELS, fake_batch, precisions  # noqa: E402
from bench_fit import interleaved_seconds, tf_threads, zoo_step  # noqa: E402  (timing in turns; threads; a step)
from bench_torch import machine  # noqa: E402  (CPU model, flags, versions)

DEFAULT_MODELS = ("abn_resnet20", "ltpa_vgg_att3_w025", "abn_multitask_faceresnet20")


def first_call(call):
    """Seconds of the first call (tracing, compiling) and what it returned, as numpy."""
    start = time.perf_counter()
    result = np.asarray(call(), dtype="float32")
    return time.perf_counter() - start, result


def model_variants(name, batch, calls, measured):
    """(mode, precision, xla) -> a step function, for every combination, with data for `calls` train steps."""
    import keras

    size, num_classes, task = EXTRA_MODELS.get(name, (32, 10, "multiclass"))
    images, labels = fake_batch(batch * calls, size, num_classes, task == "multilabel")

    def step(mode, precision, xla):
        keras.utils.set_random_seed(0)  # the same weights with and without XLA, so their outputs can be compared
        return zoo_step(name, mode, precision, images, labels, batch, task, num_classes, jit_compile=xla)

    return {(mode, precision, xla): step(mode, precision, xla)
            for mode in ("train", "infer") for precision in measured for xla in (False, True)}


def measure(name, args, measured):
    calls = model_variants(name, args.batch_size, 2 + args.rounds * args.steps, measured)  # first, warm, timed
    first = {key: first_call(call) for key, call in calls.items()}  # tracing + (XLA) compiling
    for call in calls.values():
        call()  # warm
    seconds = interleaved_seconds(calls, args.rounds, args.steps)
    rows = []
    for (mode, precision, xla), per_step in seconds.items():
        graph = statistics.median(seconds[(mode, precision, False)])
        first_s, result = first[(mode, precision, xla)]
        rows.append({"model": name, "mode": mode, "precision": precision, "xla": xla,
                     "images_per_s": args.batch_size / statistics.median(per_step),
                     "ratio_to_graph": graph / statistics.median(per_step), "first_call_s": first_s,
                     # the same weights and batch: the first loss (train) or the logits (infer) must agree
                     "max_abs_diff_to_graph": float(np.max(np.abs(result - first[(mode, precision, False)][1]))),
                     "step_seconds": per_step})
    return rows


def table(rows):
    lines = ["| model | step | precision | graph (oneDNN) | XLA | XLA / graph | first call, graph / XLA "
             "| XLA - graph |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    by_key = {(r["model"], r["mode"], r["precision"], r["xla"]): r for r in rows}
    for (model, mode, precision, xla), row in by_key.items():
        if xla:
            continue
        fast = by_key[(model, mode, precision, True)]
        lines.append(f"| `{model}` | {mode} | {precision} | {row['images_per_s']:,.0f} | {fast['images_per_s']:,.0f} "
                     f"| {fast['ratio_to_graph']:.2f}x | {row['first_call_s']:.1f} / {fast['first_call_s']:.1f} s "
                     f"| {fast['max_abs_diff_to_graph']:.1e} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--precisions", nargs="+", choices=["auto", "fp32", "bfloat16"], default=["auto"],
                        help="auto: fp32, plus bfloat16 where the CPU computes in it")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    tf_threads(args.threads)
    measured = precisions(args.precisions)
    rows = []
    for name in args.models:
        rows += measure(name, args, measured)
        print(f"{name} done", file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        meta = {"machine": machine(), "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds,
                "threads": args.threads}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
