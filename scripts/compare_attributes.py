#!/usr/bin/env python
"""Per-attribute accuracy of several attribute models side by side (the README's CelebA table).

    python scripts/compare_attributes.py --data ../shared/datasets/celeba-subset-64.npz \
        plain_faceresnet20.celeba64 abn_multitask_faceresnet20.celeba64 multichannel_faceresnet20.celeba64

Each column is what ``zoo evaluate MODEL --data DATA --split test`` measures (the same function);
prints a markdown table: one row per attribute, the positive rate of the split, then the mean and
the majority-class baseline.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import data as zdata  # noqa: E402
from zoo.cli import load_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    metrics = {name: zoo.evaluate(load_model(name), args.data, split=args.split, progress=False)
               for name in args.models}
    first = next(iter(metrics.values()))
    names = list(first["per_attribute_accuracy"])
    source = zdata.open_source(args.data, args.split, class_names=names)
    positive = np.asarray(source.labels).mean(axis=0)
    short = [name.split(".")[0] for name in args.models]
    lines = ["| attribute | positive | " + " | ".join(short) + " |", "| --- | ---: |" + " ---: |" * len(short)]
    for i, attribute in enumerate(names):
        cells = [metrics[m]["per_attribute_accuracy"][attribute] for m in args.models]
        best = max(cells)
        row = " | ".join(f"**{c:.1%}**" if c == best and cells.count(best) == 1 else f"{c:.1%}" for c in cells)
        lines.append(f"| {attribute} | {positive[i]:.1%} | {row} |")
    lines.append("| **mean** | | " + " | ".join(f"**{metrics[m]['mean_accuracy']:.2%}**" for m in args.models) + " |")
    lines.append("| majority baseline | | " + " | ".join(f"{metrics[m]['majority_baseline']:.2%}" for m in args.models)
                 + " |")
    lines.append("| mean ROC AUC | | " + " | ".join(f"{metrics[m]['mean_auc']:.4f}" for m in args.models) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
