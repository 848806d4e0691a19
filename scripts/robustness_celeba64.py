#!/usr/bin/env python
"""The README's attribute robustness table: mean attribute accuracy under Gaussian noise, FGSM and
PGD (on the binary cross-entropy) for the plain baseline, multi-task ABN, and multi-channel
attention without and with each intentional mask transformation, on the CelebA subset's test split.

    python scripts/robustness_celeba64.py --data ../shared/datasets/celeba-subset-64.npz \
        [--max-examples 870] [--out docs/robustness_celeba64]

Every column is ``zoo robustness`` on one model, with a short label (the same as
``zoo robustness plain_faceresnet20.celeba64 --compare MCA@mask_transform=power,mask_strength=1 ...``
with MCA = multichannel_faceresnet20.celeba64). Writes ``OUT.json``, ``OUT.png`` and ``OUT.md`` (the table).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo import robustness as zr  # noqa: E402
from zoo.cli import load_model  # noqa: E402

MCA = "multichannel_faceresnet20.celeba64"
MODELS = {
    "plain": "plain_faceresnet20.celeba64",
    "ABN multi-task": "abn_multitask_faceresnet20.celeba64",
    "multi-channel": MCA,
    "MC top_channels 0.5": f"{MCA}@mask_transform=top_channels,mask_strength=0.5",
    "MC top_channels 0.9": f"{MCA}@mask_transform=top_channels,mask_strength=0.9",
    "MC channel_weight 1": f"{MCA}@mask_transform=channel_weight,mask_strength=1",
    "MC channel_weight 2": f"{MCA}@mask_transform=channel_weight,mask_strength=2",
    "MC power 1": f"{MCA}@mask_transform=power,mask_strength=1",
    "MC power 3": f"{MCA}@mask_transform=power,mask_strength=3",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-examples", type=int, default=870)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0, 8, 16, 32])
    parser.add_argument("--pgd-steps", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="labels of MODELS to run (default: all)")
    parser.add_argument("--out", default="docs/robustness_celeba64")
    parser.add_argument("--update", action="store_true", help="keep the other models' results in OUT.json")
    args = parser.parse_args()
    results = {}
    previous = Path(f"{args.out}.json")
    if args.update and previous.exists():
        stored = json.loads(previous.read_text())["results"]
        results = {label: {attack: {float(s): v for s, v in per.items()} for attack, per in r.items()}
                   for label, r in stored.items()}
    for label, spec in MODELS.items():
        if args.only and label not in args.only:
            continue
        start = time.perf_counter()
        results[label] = zr.robustness(load_model(spec), args.data, ("noise", "fgsm", "pgd"), args.epsilons,
                                       args.sigmas, args.pgd_steps, args.max_examples)
        print(f"{label}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    results = {label: results[label] for label in MODELS if label in results}  # the table's order
    table = zr.format_table(results)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.md").write_text(table + "\n")
    Path(f"{args.out}.json").write_text(json.dumps({"models": MODELS, "args": vars(args), "results": results},
                                                   indent=1))
    zr.plot_curves(results, f"{args.out}.png", force=True)  # regenerates the docs figure


if __name__ == "__main__":
    main()
