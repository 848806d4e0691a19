#!/usr/bin/env python
"""Where on a cluttered-MNIST image does a map sit: digit, clutter or empty background?

    python scripts/benchmark_extras.py abn_resnet20.cluttered_mnist abn_resnet20.multiply.cluttered_mnist \
        --data cluttered_mnist60.npz [--method attention] [--attention-map attention_2] [--max-examples 300]

Prints, per model, the map's mean (min-max scaled, true class) on the digit's pixels, on clutter
ink (bright pixels outside the digit mask) and on empty background, and the per-image Pearson
correlation of the map with the digit mask and with all ink: the question "is this map high on
the background?" that the box metrics of ``zoo benchmark`` answer only indirectly.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zoo  # noqa: E402
from zoo.explain.benchmark import load_ground_truth  # noqa: E402


def mean_correlation(maps, regions):
    """Mean over images of the Pearson correlation between each map and a region mask; a constant
    map (e.g. a Grad-CAM whose ReLU zeroed everything) has none and is left out."""
    varying = [(m, r) for m, r in zip(maps, regions) if m.std() > 0 and r.std() > 0]
    return float(np.mean([np.corrcoef(m.ravel(), r.ravel().astype("float32"))[0, 1] for m, r in varying]))


def region_statistics(maps, images, masks, ink_threshold=127):
    ink = images[..., 0] > ink_threshold
    clutter, empty = ink & ~masks, ~ink & ~masks
    return {"digit": float(maps[masks].mean()), "clutter": float(maps[clutter].mean()),
            "background": float(maps[empty].mean()), "corr_digit": mean_correlation(maps, masks),
            "corr_ink": mean_correlation(maps, ink)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--method", default="attention")
    parser.add_argument("--attention-map", default=None, help="which declared map is 'attention' (e.g. LTPA's "
                                                               "attention_2; default: the model's first)")
    parser.add_argument("--max-examples", type=int, default=300)
    args = parser.parse_args()
    images, labels, boxes, masks = load_ground_truth(args.data, "test", args.max_examples)
    if masks is None:
        parser.error(f"{args.data} has no digit masks (make it with scripts/make_cluttered_mnist.py)")
    share = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean() / np.prod(images.shape[1:3])
    print(f"box share of the canvas: {share:.3f}")
    print("| model | mean on digit | on clutter | on background | corr. with digit mask | corr. with all ink |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        model = zoo.load(name)
        options = {"attention_map": args.attention_map} if args.attention_map else {}
        maps = np.concatenate([zoo.explain.explain(model, images[i : i + 50], (args.method,),
                                                   target=labels[i : i + 50], **options)[args.method]
                               for i in range(0, len(images), 50)])
        s = region_statistics(maps, images, masks)
        constant = int((maps.reshape(len(maps), -1).std(axis=1) == 0).sum())
        if constant:
            print(f"{name}: {constant} of {len(maps)} maps constant (left out of the correlations)", file=sys.stderr)
        print(f"| {name} | {s['digit']:.3f} | {s['clutter']:.3f} | {s['background']:.3f} | {s['corr_digit']:+.3f} "
              f"| {s['corr_ink']:+.3f} |")


if __name__ == "__main__":
    main()
