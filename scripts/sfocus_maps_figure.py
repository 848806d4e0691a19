#!/usr/bin/env python
"""The figure of what Sharpen Focus changes: for the same test images, the last layer's Grad-CAM
of the true class and of the most confusing class (the top-1 when wrong, else the top-2), for a
network trained with cross-entropy alone and one trained with Sharpen Focus.

    python scripts/sfocus_maps_figure.py PLAIN_MODEL SF_MODEL --data cifar10-jpeg.npz --output F.png \
        [--count 8] [--first N]

Maps are computed as in training (``zoo.gradcam.TapGradients``, positive-gradient weights, the
objective's default), each min-max scaled; the row label gives the true class and, per model, the
confusing class and the L_AS of that image (lower: more separable). The images are spread evenly
over the split (a split sorted by class shows every class), or consecutive from ``--first``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import zoo  # noqa: E402
from zoo import data as zdata  # noqa: E402
from zoo import registry, tasks  # noqa: E402
from zoo.explain.figures import save_grid_figure  # noqa: E402
from zoo.explain.maps import normalize_maps  # noqa: E402
from zoo.gradcam import TapGradients, confusing_class, gradcam_from  # noqa: E402
from zoo.hub import model_image_size  # noqa: E402
from zoo.models import sfocus  # noqa: E402


def true_and_confusing_maps(model, images, labels):
    """``(true-class maps, confusing-class maps, confusing classes, L_AS per image)`` at the last layer."""
    info = registry.feature_info(model)
    request = registry.GradientRequest(taps=(("last", info.gradcam_layer),), classes=("true", "confusing"))
    labels = ops.convert_to_tensor(np.asarray(labels), "int32")
    outputs = TapGradients(model, request)(ops.convert_to_tensor(images), labels, training=False)
    true, confusing = (gradcam_from(outputs["features/last"], outputs[f"gradients/last/{c}"], positive_gradients=True)
                       for c in ("true", "confusing"))
    overlap = sfocus.separability(true, confusing)
    which = confusing_class(outputs["logits"], labels)
    return (normalize_maps(ops.convert_to_numpy(true)), normalize_maps(ops.convert_to_numpy(confusing)),
            np.asarray(ops.convert_to_numpy(which)), np.asarray(ops.convert_to_numpy(overlap)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plain", help="the cross-entropy model (pretrained name or saved folder)")
    parser.add_argument("sharpen_focus", help="the Sharpen Focus model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", required=True)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--first", type=int, default=None,
                        help="show consecutive images from this index (default: spread evenly over the split)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    models = {"CE": zoo.load(args.plain), "SF": zoo.load(args.sharpen_focus)}
    names = tasks.label_names_of(models["CE"])
    source = zdata.open_source(args.data, args.split, image_size=model_image_size(models["CE"]), class_names=names)
    if args.first is None:
        shown = np.unique(np.linspace(0, len(source) - 1, args.count).astype(int))
    else:
        shown = np.arange(args.first, min(args.first + args.count, len(source)))
    images, labels = source.images_at(shown).astype("float32"), np.asarray(source.labels)[shown]
    maps = {key: true_and_confusing_maps(model, images, labels) for key, model in models.items()}
    rows = []
    for i in range(len(images)):
        label = f"{names[labels[i]]}\n" + "\n".join(
            f"{key}: vs {names[maps[key][2][i]]}, L_AS {maps[key][3][i]:.2f}" for key in models)
        rows.append((label, images[i], [maps["CE"][0][i], maps["CE"][1][i], maps["SF"][0][i], maps["SF"][1][i]]))
    columns = ["CE: true", "CE: confusing", "SF: true", "SF: confusing"]
    save_grid_figure(args.output, rows, columns, title="Grad-CAM of the true and the most confusing class: "
                     "cross-entropy (CE) vs Sharpen Focus (SF)", force=args.force)
    print(args.output)


if __name__ == "__main__":
    main()
