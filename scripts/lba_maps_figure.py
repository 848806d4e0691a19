#!/usr/bin/env python
"""The figure of where loss-based attention looks: for the same test images, the LBA model's patch
weights alpha (each patch's weight drawn over its own window, :func:`zoo.explain.maps.patch_map`),
Grad-CAM of the same network and Grad-CAM of the plain baseline of the same backbone.

    python scripts/lba_maps_figure.py LBA_MODEL PLAIN_MODEL --data cluttered_mnist60.npz --output F.png \
        [--count 6] [--first N]

Maps are for the true class (the patch weights have no class: they are the image's), each
min-max scaled; the row label gives the true class and both models' predictions. Images with
boxes (cluttered MNIST) get the digit's box drawn. The images are spread evenly over the split,
or consecutive from ``--first``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import tasks  # noqa: E402
from zoo.explain.benchmark import load_ground_truth  # noqa: E402
from zoo.explain.figures import save_grid_figure  # noqa: E402
from zoo.explain.methods import explain  # noqa: E402


def chosen(count, total, first=None):
    """`count` indices spread evenly over `total` images, or consecutive ones from `first`."""
    if first is None:
        return np.unique(np.linspace(0, total - 1, count).astype(int))
    return np.arange(first, min(first + count, total))


def figure_rows(lba, plain, images, labels):
    """The grid's rows ``(label, image, [patch weights, LBA Grad-CAM, plain Grad-CAM])`` and its columns."""
    names = tasks.label_names_of(lba)
    lba_maps = explain(lba, images, methods=("attention", "gradcam"), target=labels)
    plain_maps = explain(plain, images, methods=("gradcam",), target=labels)
    predicted = {key: np.argmax(np.asarray(model(images, training=False)["logits"]), axis=-1)
                 for key, model in (("LBA", lba), ("plain", plain))}
    rows = [(f"{names[labels[i]]}\nLBA: {names[predicted['LBA'][i]]}, plain: {names[predicted['plain'][i]]}",
             images[i], [lba_maps["attention"][i], lba_maps["gradcam"][i], plain_maps["gradcam"][i]])
            for i in range(len(images))]
    return rows, ["LBA: patch weights", "LBA: Grad-CAM", "plain: Grad-CAM"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lba", help="the loss-based attention model (pretrained name or saved folder)")
    parser.add_argument("plain", help="the plain baseline of the same backbone")
    parser.add_argument("--data", required=True, help=".npz (cluttered MNIST with boxes, or e.g. the CIFAR-10 copy)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", required=True)
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--first", type=int, default=None,
                        help="show consecutive images from this index (default: spread evenly over the split)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    lba, plain = zoo.load(args.lba), zoo.load(args.plain)
    images, labels, boxes, _ = load_ground_truth(args.data, args.split)
    shown = chosen(args.count, len(images), args.first)
    images, labels = images[shown].astype("float32"), np.asarray(labels)[shown]
    rows, columns = figure_rows(lba, plain, images, labels)
    save_grid_figure(args.output, rows, columns, boxes=None if boxes is None else boxes[shown],
                     title="Loss-based attention's patch weights against Grad-CAM (true class)", force=args.force)
    print(args.output)


if __name__ == "__main__":
    main()
