#!/usr/bin/env python
"""What TFLite quantisation costs a pretrained model: top-1 of its TFLite export on a test split,
float32 against float16, dynamic-range (int8 weights) and full int8 (calibrated on the train
split), beside the batch-1 latency of each file.

    python scripts/eval_tflite.py abn_resnet20.cifar10 --data cifar10-jpeg.npz
        [--quantize none float16 dynamic int8] [--calibration-count 200] [--threads 2] [--json F]

Single-label models (top-1 of ``logits``); the Keras model's own top-1 is the first row.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def split_batches(source, batch_size=500, limit=None):
    """(uint8 images, integer labels) batches of an opened data source, at most `limit` images."""
    from zoo import data as zdata

    seen = 0
    for images, labels in zdata.make_dataset(source, batch_size, training=False):
        images, labels = np.asarray(images), np.asarray(labels)
        if limit is not None:
            images, labels = images[:limit - seen], labels[:limit - seen]
        seen += len(images)
        yield images.astype("uint8"), labels
        if limit is not None and seen >= limit:
            return


def top1(predict, batches):
    correct = total = 0
    for images, labels in batches:
        correct += int(np.sum(np.argmax(predict(images), axis=-1) == labels))
        total += len(labels)
    return correct / max(total, 1)


def latency_ms(runner, image, repeats=200):
    for _ in range(10):
        runner(image=image)
    start = time.perf_counter()
    for _ in range(repeats):
        runner(image=image)
    return 1000.0 * (time.perf_counter() - start) / repeats


def measure(model_name, data, quantizations, calibration_count=200, threads=2, limit=None):
    import zoo
    from zoo import data as zdata
    from zoo import export

    model = zoo.load(model_name)
    test = zdata.open_source(data, "test", image_size=tuple(model.input.shape[1:3]))  # decoded once, read per row
    rows = [{"variant": "keras fp32", "top1": top1(lambda x: np.asarray(model(x.astype("float32"),
                                                                          training=False)["logits"]),
                                                 split_batches(test, limit=limit))}]
    calibration = export.calibration_images(model, data, "train", calibration_count)
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in quantizations:
            q = None if quantize == "none" else quantize
            path = export.export(model, Path(tmp) / f"{quantize}.tflite", "tflite", q, outputs=("logits",),
                                 calibration=calibration if q == "int8" else None)
            runner = export.tflite_runner(path, num_threads=threads)
            rows.append({"variant": f"tflite {quantize}", "top1": top1(lambda x: runner(image=x)["logits"],
                                                                      split_batches(test, limit=limit)),
                         "latency_ms": latency_ms(runner, calibration[:1]), "bytes": path.stat().st_size})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="pretrained name or saved model folder")
    parser.add_argument("--data", required=True, help="a folder, .npz or tfds:NAME with train and test splits")
    parser.add_argument("--quantize", nargs="+", choices=["none", "float16", "dynamic", "int8"],
                        default=["none", "float16", "dynamic", "int8"])
    parser.add_argument("--calibration-count", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first LIMIT test images")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = measure(args.model, args.data, args.quantize, args.calibration_count, args.threads, args.limit)
    print("| variant | top-1 | batch-1 latency | file size |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        latency = f"{row['latency_ms']:.2f} ms" if "latency_ms" in row else "-"
        size = f"{row['bytes'] / 1e6:.2f} MB" if "bytes" in row else "-"
        print(f"| {row['variant']} | {100 * row['top1']:.2f}% | {latency} | {size} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
