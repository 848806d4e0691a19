#!/usr/bin/env python
"""The smallest reproduction of a native crash in TensorFlow's oneDNN CPU kernels (TensorFlow
alone, no zoo code): ``Conv2DBackpropFilter`` of a 1x1, stride-2 convolution corrupts the heap
(segfault or abort) on CPUs with AVX512-BF16 for few channels at even image sizes from 56 px.

    python scripts/repro_onednn_conv_crash.py            # the grid below, one process per case
    python scripts/repro_onednn_conv_crash.py --case 60 8 16 2 4   # size in out stride batch

Each case runs in its own process (a crash ends only that process) and is repeated, since heap
corruption does not always show on the first run. The zoo avoids the op: a strided 1x1
convolution is built as subsampling + a stride-1 1x1 convolution (zoo.models.layers.Subsample).
"""

import argparse
import os
import platform
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GRID = [(size, 8, 16, 2, 4) for size in (32, 48, 54, 56, 59, 60, 61, 64, 80, 96)]
GRID += [(60, c_in, c_out, 2, 4) for c_in, c_out in ((3, 16), (4, 8), (8, 8), (8, 32), (16, 16), (16, 32))]
GRID += [(60, 8, 16, 1, 4), (60, 8, 16, 2, 1), (60, 8, 16, 2, 32)]


def run_case(size, c_in, c_out, stride, batch):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    out = -(-size // stride)
    x = tf.constant(rng.uniform(0, 1, (batch, size, size, c_in)).astype("float32"))
    dy = tf.constant(rng.normal(size=(batch, out, out, c_out)).astype("float32"))
    for _ in range(10):
        grad = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[1, 1, c_in, c_out], out_backprop=dy,
                                               strides=[1, stride, stride, 1], padding="SAME")
    print(float(tf.reduce_sum(grad)))


def cpu_flags():
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", type=int, nargs=5, metavar=("SIZE", "IN", "OUT", "STRIDE", "BATCH"))
    parser.add_argument("--repeats", type=int, default=3, help="processes per case")
    args = parser.parse_args()
    if args.case:
        return run_case(*args.case)
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, CPU flags: {cpu_flags()}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}")
    print("size  in  out  stride  batch  exit codes")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for case in GRID:
        codes = [subprocess.run([sys.executable, __file__, "--case", *map(str, case)], capture_output=True,
                                env=env).returncode for _ in range(args.repeats)]
        verdict = "crash" if any(codes) else "ok"
        print(f"{case[0]:4d} {case[1]:3d} {case[2]:4d} {case[3]:7d} {case[4]:6d}  {codes} {verdict}", flush=True)


if __name__ == "__main__":
    main()
