"""Batch inference of the zoo's models three ways, in one process, interleaved (ratios, not
absolute times): the model called eagerly (what ``zoo evaluate`` ran before), compiled
(``model.predict_on_batch``: a ``tf.function`` / XLA jit), and compiled with its batch norms
folded into the convolutions (:func:`zoo.fold_batch_norm`; what ``zoo evaluate`` runs now).
Any Keras backend (``KERAS_BACKEND=jax python scripts/bench_inference.py``).

    python scripts/bench_inference.py [--models abn_resnet20 ...] [--batch-size 500] [--rounds 7]
        [--threads 2] [--json F]
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from bench_fit import interleaved_seconds, tf_threads  # noqa: E402  (timing in turns; TensorFlow's threads)
from bench_torch import machine  # noqa: E402  (CPU model, flags, versions)

DEFAULT_MODELS = ("abn_resnet20", "ltpa_vgg_att3_w025", "abn_multitask_faceresnet20", "lba_resnet18_w0125")
SIZES = {"abn_multitask_faceresnet20": 64}  # input side; 32 otherwise


def variants(name, batch):
    import keras

    import zoo

    model = zoo.build(name)
    folded = zoo.fold_batch_norm(model)
    size = SIZES.get(name, 32)
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    return {
        "eager": lambda: keras.ops.convert_to_numpy(model(x, training=False)["logits"]),
        "compiled": lambda: model.predict_on_batch(x)["logits"],
        "compiled, batch norms folded": lambda: folded.predict_on_batch(x)["logits"],
    }


def measure(name, batch, rounds):
    calls = variants(name, batch)
    for call in calls.values():  # compile and warm up
        call()
        call()
    seconds = interleaved_seconds(calls, rounds)
    base = float(np.median(seconds["eager"]))
    return [{"model": name, "variant": key, "images_per_s": batch / float(np.median(s)),
             "ratio": base / float(np.median(s)), "seconds": s} for key, s in seconds.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch-size", type=int, default=500, help="zoo evaluate's default batch")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import keras

    if keras.backend.backend() == "tensorflow":
        tf_threads(args.threads)
    rows = [row for name in args.models for row in measure(name, args.batch_size, args.rounds)]
    print("| model | variant | images/s | ratio |\n| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| `{row['model']}` | {row['variant']} | {row['images_per_s']:,.0f} | {row['ratio']:.2f} |")
    if args.json:
        meta = {"backend": keras.backend.backend(), "machine": machine(), "batch_size": args.batch_size,
                "rounds": args.rounds, "threads": args.threads}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
