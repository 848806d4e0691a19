#!/usr/bin/env python
"""``zoo robustness`` two ways, in one process, interleaved rounds (ratios, not absolute times):
the model attacked and scored eagerly as it is (``robustness(..., compiled=False)``, what the
command ran before) against compiled graphs of the model with its batch norms folded (the
default). Both must give the same accuracies; the seconds exclude loading the model and data.

    python scripts/bench_robustness.py MODEL... --data DATA [--max-examples 250] [--rounds 2]
        [--threads 2] [--json F]

MODEL is a pretrained name or a saved model folder, DATA anything ``zoo robustness`` takes.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from bench_fit import tf_threads  # noqa: E402  (TensorFlow's thread counts)
from bench_torch import machine  # noqa: E402  (CPU model, flags, versions)

VARIANTS = {"eager": False, "compiled, folded": True}


def timed(model, data, max_examples, compiled):
    from zoo.robustness import robustness

    start = time.perf_counter()
    result = robustness(model, data, max_examples=max_examples, compiled=compiled)
    return time.perf_counter() - start, {attack: dict(per) for attack, per in result.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-examples", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    tf_threads(args.threads)
    import zoo

    rows = []
    print("| model | eager (s) | compiled, folded (s) | ratio | same accuracies |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name in args.models:
        model = zoo.load(name)
        seconds = {variant: [] for variant in VARIANTS}
        accuracies = {}
        for _ in range(args.rounds):
            for variant, compiled in VARIANTS.items():
                elapsed, accuracies[variant] = timed(model, args.data, args.max_examples, compiled)
                seconds[variant].append(elapsed)
        medians = {variant: statistics.median(values) for variant, values in seconds.items()}
        same = accuracies["eager"] == accuracies["compiled, folded"]
        ratio = medians["eager"] / medians["compiled, folded"]
        rows.append({"model": name, "seconds": seconds, "median": medians, "ratio": ratio, "same_accuracies": same,
                     "accuracies": accuracies})
        print(f"| {name} | {medians['eager']:.1f} | {medians['compiled, folded']:.1f} | {ratio:.2f}x | "
              f"{'yes' if same else 'no'} |", flush=True)
    report = {"machine": machine(), "max_examples": args.max_examples, "rounds": args.rounds,
              "threads": args.threads, "rows": rows}
    print(json.dumps(report["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
