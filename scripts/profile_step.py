#!/usr/bin/env python
"""Where a zoo model's train step (or inference) spends its time: TensorFlow's profiler over a few
steps, self-time summed by op type, by part of the network and by layer (issue 19).

    python scripts/profile_step.py [--model abn_resnet20] [--mode train|infer]
        [--precision fp32|bfloat16] [--batch-size 128] [--steps 5] [--warmup 3] [--top 15] [--json F]
        [--threads 2] [--official ABN_REPO]

The step is the training core's (:class:`zoo.training.loop.Trainer`) on synthetic data, or the model
in inference mode in a ``tf.function``. The tables give the share of the profiled CPU self-time
(TensorFlow's ``framework_op_stats``, the TensorBoard profile plugin's op table); "layer" is the
first name scope below the model (gradient ops are counted with the layer they differentiate).
TensorFlow runs one op at a time on `--threads` intra-op threads (as the side-by-side benchmark
does), so the self-times add up to the step.

With ``--official ABN_REPO`` (a checkout of the official ABN code, ``abn_resnet20`` training only)
the official PyTorch step (its two-term loss, SGD; ``torch.autocast`` for bfloat16) is profiled
too, with ``torch.profiler``, and both are summed by kind of op (convolution forward / backward,
batch norm forward / backward, ReLU, the rest) in milliseconds per step, side by side.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import zoo_step  # noqa: E402  (the zoo's train or inference step)


def step_function(model, mode, precision, batch):
    """A no-argument function running one step of `model` on synthetic data (warmed up by the caller)."""
    import zoo

    rng = np.random.default_rng(0)
    size = zoo.build(model).input.shape[1:3] if mode == "infer" else (32, 32)  # training: CIFAR-sized, as before
    images = rng.integers(0, 256, (batch * 64, *size, 3)).astype("uint8")
    return zoo_step(model, mode, precision, images, rng.integers(0, 10, len(images)), batch)


def op_table(xplane):
    """Rows of TensorFlow's framework op statistics: (op type, op name, self-time in us)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data, ok = plugin.xspace_to_tools_data([xplane], "framework_op_stats", {})
    if not ok:
        raise SystemExit(f"the profiler could not read {xplane}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    rows = [dict(zip(columns, (cell["v"] if cell else None for cell in row["c"]))) for row in table["rows"]]
    return [(r["type"], r["operation"], float(r["total_self_time"])) for r in rows
            if "IDLE" not in (r["type"], r["host_or_device"])]


def layer_of(name):
    """The layer an op name belongs to: the first scope below the step / model scopes."""
    parts = [p for p in name.split("/") if p and p not in ("gradient_tape", "StatefulPartitionedCall")]
    for skip in ("while", "body", "cond"):
        parts = [p for p in parts if not p.startswith(skip)]
    return parts[1] if len(parts) > 2 else parts[0] if parts else name


def part_of(name):
    """The layer's part of the network: its name up to ``_block`` (``att_stage3``, ``stage2``, ``sgd``)."""
    layer = layer_of(name)
    return layer.split("_block")[0] if "_block" in layer else layer


def shares(rows, key):
    total = sum(t for *_, t in rows) or 1.0
    summed = collections.Counter()
    for op_type, name, time in rows:
        summed[key(op_type, name)] += time
    return [(k, v / total) for k, v in summed.most_common()]


OP_KINDS = (  # (kind, TensorFlow op types, PyTorch aten ops): what the side-by-side table sums
    ("convolution forward", ("_MklNativeConv2D", "Conv2D", "_MklNativeFusedConv2D"), ("aten::mkldnn_convolution",)),
    ("convolution backward", ("_MklNativeConv2DBackpropFilter", "_MklNativeConv2DBackpropInput",
                              "Conv2DBackpropFilter", "Conv2DBackpropInput"), ("aten::convolution_backward",)),
    ("batch norm forward", ("_MklNativeFusedBatchNormEx", "_MklNativeFusedBatchNormV3", "FusedBatchNormV3"),
     ("aten::native_batch_norm",)),
    ("batch norm backward", ("_MklNativeFusedBatchNormGradV3", "FusedBatchNormGradV3"),
     ("aten::native_batch_norm_backward",)),
    ("ReLU forward / backward", ("Relu", "ReluGrad"), ("aten::clamp_min_", "aten::threshold_backward", "aten::relu_")),
)


def kind_of(op_type):
    """The kind of an op (TensorFlow type or aten name) for the side-by-side table; "other" if none."""
    return next((kind for kind, tf_types, torch_ops in OP_KINDS if op_type in tf_types + torch_ops), "other")


def official_profile(repo, precision, batch, warmup, steps, threads):
    """The official ABN ResNet-20 train step under ``torch.profiler``: ``{kind: ms per step}``."""
    import torch
    from bench_abn_official import abn_loss, official_inputs, official_network
    from bench_torch import torch_train_step
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(threads)
    x, y = official_inputs(batch)
    step = torch_train_step(official_network(repo), x, y, abn_loss, precision)

    for _ in range(warmup):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    summed = collections.Counter()
    for event in profiler.key_averages():
        summed[kind_of(event.key)] += event.self_cpu_time_total / 1000.0 / steps
    return dict(summed)


def zoo_by_kind(result):
    total = result["self_time_ms_per_step"]
    summed = collections.Counter()
    for op_type, share in result["by_type"]:
        summed[kind_of(op_type)] += share * total
    return dict(summed)


def side_by_side(zoo_ms, official_ms):
    """Markdown rows: ms per step by kind of op, the zoo against the official code."""
    lines = ["| kind of op | official (ms / step) | zoo (ms / step) | zoo / official |", "| --- | ---: | ---: | ---: |"]
    for kind in [k for k, *_ in OP_KINDS] + ["other", "total"]:
        a = sum(official_ms.values()) if kind == "total" else official_ms.get(kind, 0.0)
        b = sum(zoo_ms.values()) if kind == "total" else zoo_ms.get(kind, 0.0)
        lines.append(f"| {kind} | {a:.1f} | {b:.1f} | {b / a if a else float('nan'):.2f} |")
    return "\n".join(lines)


def profile(model, mode, precision, batch, warmup, steps):
    import tensorflow as tf

    step = step_function(model, mode, precision, batch)
    for _ in range(warmup):
        step()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            step()
        tf.profiler.experimental.stop()
        xplane = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
        rows = op_table(xplane)
    return {"by_type": shares(rows, lambda t, n: t), "by_layer": shares(rows, lambda t, n: layer_of(n)),
            "by_part": shares(rows, lambda t, n: part_of(n)),
            "self_time_ms_per_step": sum(t for *_, t in rows) / 1000.0 / steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="abn_resnet20")
    parser.add_argument("--mode", choices=["train", "infer"], default="train")
    parser.add_argument("--precision", choices=["fp32", "bfloat16"], default="fp32")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official", default=None, help="a checkout of the official ABN code: profile it too")
    args = parser.parse_args(argv)
    if args.official and (args.model, args.mode) != ("abn_resnet20", "train"):
        parser.error("--official profiles the official ABN ResNet-20 train step: use it with the default "
                     "--model abn_resnet20 --mode train")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started (called from Python): its threads stay as they are
        pass
    result = profile(args.model, args.mode, args.precision, args.batch_size, args.warmup, args.steps)
    if args.official:
        result["official_ms_by_kind"] = official_profile(args.official, args.precision, args.batch_size, args.warmup,
                                                         args.steps, args.threads)
        result["zoo_ms_by_kind"] = zoo_by_kind(result)
    print(f"{args.model} {args.mode} {args.precision}, batch {args.batch_size}: "
          f"{result['self_time_ms_per_step']:.1f} ms of op self-time per step")
    for title in ("by_type", "by_part", "by_layer"):
        print(f"\n| {title.replace('_', ' ')} | share |\n| --- | ---: |")
        for name, share in result[title][:args.top]:
            print(f"| {name} | {100 * share:.1f}% |")
    if args.official:
        print("\n" + side_by_side(result["zoo_ms_by_kind"], result["official_ms_by_kind"]))
    if args.json:
        Path(args.json).write_text(json.dumps({**vars(args), **result}, indent=1))
    return result


if __name__ == "__main__":
    main()
