#!/usr/bin/env python
"""Where the batch-1 latency of a TFLite export comes from: the same model exported with all its
outputs and with ``logits`` alone, run on 1..N threads with TFLite's default XNNPACK delegate and
without it, in interleaved rounds (median and best ms), beside the model's arithmetic (multiply-adds
of its convolutions and dense layers) and the GFLOP/s that the fastest variant reaches.

    python scripts/bench_tflite.py [abn_resnet20] [--threads 1 2] [--rounds 5] [--repeats 40] [--json F]

The model is built with random weights (latency does not depend on them).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_torch import machine  # noqa: E402  (CPU flags and versions for the JSON)
from eval_tflite import latency_ms  # noqa: E402  (ms per call after a short warm-up)


def multiply_adds(model):
    """Multiply-adds of one image through the model's Conv2D and Dense layers (the arithmetic that
    dominates a CNN; batch norm, activations and pooling are left out)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            total += height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def measure(arch, threads=(1, 2), rounds=5, repeats=40, build_kwargs=None):
    """Rows of ``{outputs, threads, xnnpack, values (ms per round), median, best}`` and the model's
    multiply-adds per image."""
    import zoo
    from zoo import export

    model = zoo.build(arch, **(build_kwargs or {}))
    image = np.random.default_rng(0).integers(0, 256, (1, *model.input.shape[1:])).astype("uint8")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"all": export.export(model, Path(tmp) / "all.tflite", "tflite"),
                 "logits": export.export(model, Path(tmp) / "logits.tflite", "tflite", outputs=["logits"])}
        variants = [(outputs, n, xnnpack) for outputs in files for n in threads for xnnpack in (True, False)]
        runners = {v: export.tflite_runner(files[v[0]], v[1], default_delegates=v[2]) for v in variants}
        values = {v: [] for v in variants}
        for _ in range(rounds):  # interleaved: a disturbance slows one round of every variant alike
            for v in variants:
                values[v].append(latency_ms(runners[v], image, repeats))
    rows = [{"outputs": o, "threads": n, "xnnpack": x, "values": values[(o, n, x)],
             "median": statistics.median(values[(o, n, x)]), "best": min(values[(o, n, x)])} for o, n, x in variants]
    return rows, multiply_adds(model)


def table(rows, macs):
    lines = ["| outputs | threads | XNNPACK | median ms | best ms | GFLOP/s (best) |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['outputs']} | {r['threads']} | {'yes' if r['xnnpack'] else 'no'} | {r['median']:.2f} | "
                     f"{r['best']:.2f} | {2 * macs / r['best'] / 1e6:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", nargs="?", default="abn_resnet20")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows, macs = measure(args.arch, args.threads, args.rounds, args.repeats)
    print(f"{args.arch}: {macs / 1e6:.1f} M multiply-adds per image ({2 * macs / 1e9:.3f} GFLOP)")
    print(table(rows, macs))
    if args.json:
        report = {"machine": machine(), "arch": args.arch, "multiply_adds": macs, "rounds": args.rounds,
                  "repeats": args.repeats, "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
