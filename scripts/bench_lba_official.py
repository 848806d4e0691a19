#!/usr/bin/env python
"""Loss-based attention, the zoo against the official PyTorch code, side by side (issue 18):
training and inference images/s of the same architecture, batch and threads, fp32 and bfloat16.

    python scripts/bench_lba_official.py --official LBA_REPO [--heads conv capsule] [--batch-size 32]
        [--threads 2] [--steps 3] [--warmup 1] [--rounds 1] [--precisions fp32 bfloat16] [--modes train infer]
        [--json F]

``LBA_REPO`` is a local checkout of xsshi2015/Loss-based-Attention-for-Interpreting-Image-level-
Prediction-of-Convolutional-Neural-Networks (commit 691a024): its ``model/conv_resnet.py`` and
``model/capsule_resnet.py`` are imported as they are (torchvision, which they import and never use,
is stubbed when absent). Without ``--official``, or without PyTorch, only the zoo's rows run.

Training step on both sides: forward, ``CE(logits) + 0.1 * sum_p alpha_p CE(f_p)`` (alpha not
detached), backward, SGD with momentum 0.9 and weight decay 5e-4; the zoo's is its training core's
step (:class:`zoo.training.loop.Trainer`, TensorFlow). bfloat16: ``torch.autocast`` on the official
side, the zoo's ``mixed_bfloat16`` policy. Each variant runs ``--warmup`` untimed steps, then
``--steps`` timed ones; with ``--rounds`` above 1 every variant runs once per round, interleaved,
and the table gives the medians (the rounds are in the JSON); compare the ratios of one run (the
machine is noisy).
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import per_second, tf_threads, zoo_step  # noqa: E402  (images/s after warm-up; the zoo's step)
from bench_torch import machine, torch_batch, torch_rate  # noqa: E402  (the official side's step)

ARCHS = {"conv": ("lba_resnet18", "model/conv_resnet.py"),
         "capsule": ("lba_capsule_resnet18", "model/capsule_resnet.py")}


def fake_batch(batch, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, 32, 32, 3)).astype("uint8"), rng.integers(0, num_classes, batch)


# -- the zoo (TensorFlow) --------------------------------------------------------------------------

def zoo_rate(arch, mode, precision, batch, warmup, steps):
    images, labels = fake_batch(batch * (warmup + steps + 1))
    step = zoo_step(arch, mode, precision, images, labels, batch, loss_kwargs={"patch_loss_weight": 0.1})
    return per_second(step, warmup, steps, batch)


# -- the official code (PyTorch) -------------------------------------------------------------------

def official_module(repo, relative):
    """The official model file, imported from the checkout (torchvision, imported there and never
    used, stubbed while it is imported when it is absent)."""
    path = Path(repo) / relative
    if not path.is_file():
        raise SystemExit(f"{path} not found: --official takes a checkout of the official LBA repository")
    stubs = {}
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        stubs = {name: types.ModuleType(name) for name in
                 ("torchvision", "torchvision.datasets", "torchvision.transforms", "torchvision.utils")}
        for name, stub in stubs.items():
            if "." in name:
                setattr(stubs["torchvision"], name.split(".")[1], stub)
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location(f"official_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
    return module


def lba_loss(outputs, y):
    """``CE(logits) + 0.1 * sum_p alpha_p CE(f_p) / B`` (alpha not detached), as the zoo's step."""
    import torch.nn.functional as F

    logits, patch_logits, alpha = outputs
    patch = F.cross_entropy(patch_logits.float(), y.repeat_interleave(alpha.shape[1]), reduction="none")
    return F.cross_entropy(logits.float(), y) + 0.1 * (alpha.float().reshape(-1) * patch).sum() / len(y)


def official_rate(repo, head, mode, precision, batch, warmup, steps):
    net = official_module(repo, ARCHS[head][1]).ResNet18(num_class=10)
    x, y = torch_batch(*fake_batch(batch), (0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
    return torch_rate(net, x, y, lba_loss, lambda outputs: outputs[0], mode, precision, warmup, steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", default=None, help="a checkout of the official LBA repository")
    parser.add_argument("--heads", nargs="+", choices=sorted(ARCHS), default=["conv", "capsule"])
    parser.add_argument("--modes", nargs="+", choices=["train", "infer"], default=["train", "infer"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bfloat16"], default=["fp32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the table gives the medians")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    tf_threads(args.threads)
    torch = None
    if args.official and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(args.threads)
    elif args.official:
        print("PyTorch is not installed: the official rows are skipped", file=sys.stderr)
    todo = [(head, mode, precision) for head in args.heads for mode in args.modes for precision in args.precisions]
    timing = (args.batch_size, args.warmup, args.steps)
    values = {variant: {"zoo": [], "official": []} for variant in todo}
    for round_index in range(args.rounds):  # interleaved: every variant, both sides, once per round
        for head, mode, precision in todo:
            measured = values[(head, mode, precision)]
            measured["zoo"].append(zoo_rate(ARCHS[head][0], mode, precision, *timing))
            if torch:
                measured["official"].append(official_rate(args.official, head, mode, precision, *timing))
            print(f"round {round_index + 1}/{args.rounds} {head} {mode} {precision}: zoo {measured['zoo'][-1]:.2f}"
                  + (f", official {measured['official'][-1]:.2f}" if torch else "") + " img/s",
                  file=sys.stderr, flush=True)
    rows = []
    print("| head | mode | precision | official (img/s) | zoo (img/s) | zoo / official |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (head, mode, precision), measured in values.items():
        ours = statistics.median(measured["zoo"])
        theirs = statistics.median(measured["official"]) if measured["official"] else None
        rows.append({"head": head, "mode": mode, "precision": precision, "zoo": ours, "official": theirs,
                     "zoo_rounds": measured["zoo"], "official_rounds": measured["official"],
                     "batch_size": args.batch_size, "threads": args.threads})
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"| {head} | {mode} | {precision} | {theirs or float('nan'):.2f} | {ours:.2f} | {ratio} |", flush=True)
    report = {"machine": machine(), "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
              "rows": rows}
    print(json.dumps(report["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
