#!/usr/bin/env python
"""What Sharpen Focus claims, measured on test images: top-1 and the mean overlap ``L_AS``
between the Grad-CAM of the true class and of the most confusing class (lower = more separable),
at the declared Grad-CAM layer and inner layer, and the consistency term ``L_AC``, for each model.

    python scripts/sfocus_separability.py MODEL... --data cifar10-jpeg.npz [--max-examples 2000] [--json F]

Maps are computed as in training (``zoo.gradcam.TapGradients``, inference mode), with the
default constants of :mod:`zoo.models.sfocus`.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import zoo  # noqa: E402
from zoo import data as zdata  # noqa: E402
from zoo import registry, tasks  # noqa: E402
from zoo.gradcam import TapGradients  # noqa: E402
from zoo.hub import model_image_size  # noqa: E402
from zoo.models import sfocus  # noqa: E402


def measure(model, data, max_examples, batch_size=100, split="test"):
    """``{"top1", "as_last", "as_inner", "ac", "num_examples"}`` over the first `max_examples` images."""
    source = zdata.open_source(data, split, image_size=model_image_size(model), class_names=tasks.label_names_of(model))
    info = registry.feature_info(model)
    request = registry.GradientRequest(taps=(("last", info.gradcam_layer), ("inner", info.inner_layer)),
                                       classes=("true", "confusing"))
    tapped = TapGradients(model, request)
    sums, count = {"top1": 0.0, "as_last": 0.0, "as_inner": 0.0, "ac": 0.0}, 0
    for images, labels in zdata.make_dataset(source, batch_size, training=False):
        keep = min(len(labels), max_examples - count)
        if keep <= 0:
            break
        images, labels = images[:keep], ops.convert_to_tensor(np.asarray(labels[:keep]), "int32")
        outputs = tapped(images, labels, training=False)
        terms = sfocus.sharpen_focus_terms(labels, outputs, tasks.task_of(model))
        sums["top1"] += float(np.sum(np.argmax(ops.convert_to_numpy(outputs["logits"]), -1) == np.asarray(labels)))
        for part, value in terms.items():
            sums[part] += float(np.sum(ops.convert_to_numpy(value)))
        count += keep
    return {**{k: v / count for k, v in sums.items()}, "num_examples": count}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="pretrained names or saved model folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-examples", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = {name: measure(zoo.load(name), args.data, args.max_examples) for name in args.models}
    print("| model | test top-1 | L_AS last (lower: more separable) | L_AS inner | L_AC | images |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| `{name}` | {row['top1']:.2%} | {row['as_last']:.3f} | {row['as_inner']:.3f} | {row['ac']:.3f} | "
              f"{row['num_examples']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
