#!/usr/bin/env python
"""ABN, the zoo against the official PyTorch code, side by side (issue 19): training and inference
images/s of ABN ResNet-20 at the same batch and threads, fp32 and (where the CPU has it) bfloat16,
batch-1 latency, and the zoo's LTPA and attribute models (no-regression rows), each variant in its
own process, in interleaved rounds; the table gives the median and the best of the rounds.

    python scripts/bench_abn_official.py [--official ABN_REPO] [--rounds 3] [--batch-size 128] [--threads 2]
        [--steps 10] [--warmup 3] [--only zoo official latency extra] [--precisions auto|fp32 bfloat16] [--json F]

``ABN_REPO`` is a local checkout of machine-perception-robotics-group/attention_branch_network
(its ``models/cifar/resnet.py`` is imported as it is); without it, or without PyTorch, the official
rows are skipped with a message (nothing is downloaded).

- train: forward, the two-term loss ``CE(attention logits) + CE(perception logits)``, backward,
  SGD (momentum 0.9, weight decay 5e-4) on synthetic CIFAR-sized data; the zoo's step is its
  training core's (:class:`zoo.training.loop.Trainer`, TensorFlow). bfloat16: ``torch.autocast``
  on the official side (its code has none), the zoo's ``mixed_bfloat16``.
- infer: the model in inference mode on one batch (``torch.no_grad`` / a ``tf.function`` of the model with
  its batch norms folded, as ``zoo evaluate`` and ``zoo export`` run it).
- latency: one image, the official model in eager PyTorch against the zoo's TFLite export (fp32,
  dynamic-range int8 weights, and full int8 calibrated on random images: its speed, not its
  accuracy) on ``--threads`` XNNPACK threads, milliseconds.
- extra: the zoo's ``ltpa_vgg_att3_w025`` and ``abn_multitask_faceresnet20`` train and infer
  steps (no official counterpart; for the no-regression check between versions).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
from bench_fit import per_second, tf_threads, zoo_step  # noqa: E402  (images/s after warm-up; the zoo's step)
from bench_torch import machine, torch_batch, torch_rate  # noqa: E402  (the official side's step)

OFFICIAL_FILE = "models/cifar/resnet.py"
EXTRA_MODELS = {"ltpa_vgg_att3_w025": (32, 10, "multiclass"), "abn_multitask_faceresnet20": (64, 40, "multilabel")}


def precisions(choice):
    """The precisions to measure: ``auto`` is fp32, plus bfloat16 where the machine computes in it
    natively (:func:`zoo.training.recipe.resolve_precision`; emulated bfloat16 is several times slower)."""
    if choice != ["auto"]:
        return tuple(choice)
    from zoo.training.recipe import resolve_precision

    return ("fp32", "bfloat16") if resolve_precision("auto") == "bfloat16" else ("fp32",)


def variants(groups, official, measured=("fp32", "bfloat16")):
    """The measured variants: dicts of side, model, mode, precision, in table order."""
    rows = []
    for mode in ("train", "infer"):
        for precision in measured:
            if "official" in groups and official:
                rows.append({"side": "official", "model": "abn_resnet20", "mode": mode, "precision": precision})
            if "zoo" in groups:
                rows.append({"side": "zoo", "model": "abn_resnet20", "mode": mode, "precision": precision})
    if "latency" in groups:
        if official:
            rows.append({"side": "official", "model": "abn_resnet20", "mode": "latency", "precision": "fp32"})
        rows += [{"side": "zoo", "model": "abn_resnet20", "mode": "latency", "precision": p}
                 for p in ("tflite fp32", "tflite int8 weights", "tflite int8")]
    if "extra" in groups:
        rows += [{"side": "zoo", "model": m, "mode": mode, "precision": p} for m in EXTRA_MODELS
                 for mode in ("train", "infer") for p in measured]
    return rows


def fake_batch(batch, size=32, num_classes=10, multilabel=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3)).astype("uint8")
    labels = rng.integers(0, 2, (batch, num_classes)) if multilabel else rng.integers(0, num_classes, batch)
    return images, labels


# -- the zoo (TensorFlow) --------------------------------------------------------------------------

def zoo_rate(model, mode, precision, batch, warmup, steps, threads):
    size, num_classes, task = EXTRA_MODELS.get(model, (32, 10, "multiclass"))
    if mode == "latency":
        return zoo_latency(model, precision, warmup, steps, threads)
    images, labels = fake_batch(batch * (warmup + steps + 1), size, num_classes, task == "multilabel")
    step = zoo_step(model, mode, precision, images, labels, batch, task, num_classes)
    return per_second(step, warmup, steps, batch)


def zoo_latency(model, precision, warmup, steps, threads):
    """Milliseconds per image of the TFLite export at batch 1."""
    import tempfile

    import zoo
    from zoo import export

    quantize = {"tflite fp32": None, "tflite int8 weights": "dynamic", "tflite int8": "int8"}[precision]
    calibration = fake_batch(64, seed=1)[0] if quantize == "int8" else None  # ranges only matter for accuracy
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export(zoo.build(model), Path(tmp) / "m.tflite", "tflite", quantize, calibration=calibration)
        runner = export.tflite_runner(path, num_threads=threads)
        image = fake_batch(1)[0]
        return 1000.0 / per_second(lambda: runner(image=image), warmup, steps, 1)


# -- the official code (PyTorch) -------------------------------------------------------------------

def official_network(repo):
    import importlib.util

    path = Path(repo) / OFFICIAL_FILE
    if not path.is_file():
        raise SystemExit(f"{path} not found: --official takes a checkout of the official ABN repository")
    spec = importlib.util.spec_from_file_location("official_abn_cifar_resnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.resnet(depth=20, num_classes=10)


def abn_loss(outputs, y):
    """``CE(attention logits) + CE(perception logits)``, the official two-term loss."""
    import torch.nn.functional as F

    attention_logits, logits, _ = outputs
    return F.cross_entropy(attention_logits.float(), y) + F.cross_entropy(logits.float(), y)


def official_inputs(batch):
    """A synthetic batch as the official code takes it: NCHW, normalised by CIFAR-10's statistics."""
    return torch_batch(*fake_batch(batch), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def official_rate(repo, mode, precision, batch, warmup, steps, threads):
    import torch

    torch.set_num_threads(threads)
    x, y = official_inputs(1 if mode == "latency" else batch)
    rate = torch_rate(official_network(repo), x, y, abn_loss, lambda outputs: outputs[1], mode, precision, warmup,
                      steps)
    return 1000.0 / rate if mode == "latency" else rate


# -- the driver ------------------------------------------------------------------------------------

def measure(variant, args):
    """One variant in this process: images/s (latency: ms per image)."""
    tf_threads(args.threads)
    timing = (args.batch_size, args.warmup, args.steps, args.threads)
    if variant["side"] == "official":
        return official_rate(args.official, variant["mode"], variant["precision"], *timing)
    return zoo_rate(variant["model"], variant["mode"], variant["precision"], *timing)


def run_in_process(variant, args):
    """`variant` measured in a fresh Python process (no state shared between variants)."""
    command = [sys.executable, __file__, "--variant", json.dumps(variant), "--batch-size", str(args.batch_size),
               "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.official:
        command += ["--official", str(args.official)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def best(result):
    """The best round: the most images/s (the least ms for latency). A noisy shared machine only
    ever slows a round down, so the best round is the steadier estimate of what the code can do."""
    return min(result["values"]) if result["mode"] == "latency" else max(result["values"])


def speedup(zoo_value, official_value, mode):
    """The zoo's ratio to the official code, > 1 where the zoo is faster (latency: official / zoo)."""
    return official_value / zoo_value if mode == "latency" else zoo_value / official_value


def table(results):
    """Markdown rows: the median and the best of the rounds, and the zoo's ratio to the official
    code for both (latency: official / zoo, so that > 1 is faster for every row)."""
    official = {(r["mode"], r["precision"]): r for r in results if r["side"] == "official"}
    lines = ["| side | model | mode | precision | median | best | rounds | vs official (median) | vs official (best) |",
             "| --- | --- | --- | --- | ---: | ---: | --- | ---: | ---: |"]
    for r in results:
        unit = "ms" if r["mode"] == "latency" else "img/s"
        base = official.get((r["mode"], "fp32" if r["mode"] == "latency" else r["precision"]))
        ratios = ["-", "-"]
        if r["side"] == "zoo" and base and r["model"] == "abn_resnet20":
            ratios = [f"{speedup(r['median'], base['median'], r['mode']):.2f}x",
                      f"{speedup(best(r), best(base), r['mode']):.2f}x"]
        rounds = ", ".join(f"{v:.1f}" for v in r["values"])
        lines.append(f"| {r['side']} | {r['model']} | {r['mode']} | {r['precision']} | {r['median']:.2f} {unit} | "
                     f"{best(r):.2f} {unit} | {rounds} | {ratios[0]} | {ratios[1]} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", default=None, help="a checkout of the official ABN repository")
    parser.add_argument("--only", nargs="+", choices=["zoo", "official", "latency", "extra"],
                        default=["zoo", "official", "latency", "extra"])
    parser.add_argument("--precisions", nargs="+", choices=["auto", "fp32", "bfloat16"], default=["auto"],
                        help="auto (default): fp32, and bfloat16 only where the CPU has AVX512_BF16 / AMX or a GPU")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # one measurement (internal)
    args = parser.parse_args()
    if args.variant:
        print(measure(json.loads(args.variant), args))
        return
    import importlib.util

    official = args.official
    if official and importlib.util.find_spec("torch") is None:
        print("PyTorch is not installed: the official rows are skipped", file=sys.stderr)
        official = None
    elif not official:
        print("no --official checkout given: the official rows are skipped", file=sys.stderr)
    todo = variants(args.only, official, precisions(args.precisions))
    values = {i: [] for i in range(len(todo))}
    start = time.perf_counter()
    for round_index in range(args.rounds):  # interleaved: every variant once per round
        for i, variant in enumerate(todo):
            values[i].append(run_in_process(variant, args))
            print(f"round {round_index + 1}/{args.rounds} {variant}: {values[i][-1]:.2f}", file=sys.stderr, flush=True)
    results = [{**v, "values": values[i], "median": statistics.median(values[i])} for i, v in enumerate(todo)]
    print(table(results))
    report = {"machine": machine(), "batch_size": args.batch_size, "threads": args.threads, "steps": args.steps,
              "warmup": args.warmup, "rounds": args.rounds, "seconds": time.perf_counter() - start, "rows": results}
    print(json.dumps(report["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
