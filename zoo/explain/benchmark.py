"""The attention-quality benchmark: do a model's own maps point at the object better than post-hoc
explainers? Every (model, method) pair is scored on images with ground truth (the cluttered MNIST
of :mod:`zoo.data.cluttered`: the digit's box and pixel mask) by :mod:`zoo.explain.metrics`,
with a random map and a centre prior as baselines.

    from zoo.explain.benchmark import benchmark, format_table
    rows = benchmark({"abn": zoo.load("abn_resnet20.cluttered_mnist")}, "cluttered_mnist60.npz")
    print(format_table(rows))

Maps are computed for the *true* class of each image (what the object is), min-max normalised.
"""

import time

import numpy as np

from zoo.explain import metrics as em
from zoo.explain.maps import default_map
from zoo.explain.methods import METHODS, explain, method_label
from zoo.progress import Progress

BASELINES = ("random", "centre")
COLUMNS = {"accuracy": "model top-1 on these images", "pointing": "pointing game (hit rate)",
           "energy": "share of the map's mass in the digit's box", "iou": "IoU of map >= threshold with the digit",
           "deletion": "deletion AUC (lower is better)", "insertion": "insertion AUC (higher is better)",
           "patch_precision": "patch precision (loss-based attention's patch maps, with boxes)",
           "patch_recall": "patch recall (loss-based attention's patch maps, with boxes)",
           "seconds": "time to compute the maps"}


def load_ground_truth(data, split="test", max_examples=None):
    """``(images, labels, boxes, masks)`` of an ``.npz`` written by :func:`zoo.data.cluttered.write_npz`.

    Data without boxes and masks (any layout :meth:`zoo.data.ArraySource.from_npz` reads, e.g. the
    CIFAR-10 copy) gives ``boxes = masks = None``: only deletion / insertion can be scored.
    """
    with np.load(data) as f:
        keys = [f"{k}_{split}" for k in ("x", "y", "boxes", "masks")]
        if all(k in f.files for k in keys):
            return tuple(f[k][:max_examples] for k in keys)
    from zoo.data import ArraySource

    source = ArraySource.from_npz(data, split)
    if source.task != "multiclass":
        raise ValueError(f"{data}: the benchmark scores single-label classes; this data is {source.task}")
    return source.images[:max_examples], source.labels[:max_examples], None, None


def method_maps(model, method, images, labels, seed=0, **options):
    """``(B, H, W)`` maps of one method or baseline for the true `labels`."""
    size = images.shape[1:3]
    if method == "random":
        return em.random_maps(len(images), size, seed)
    if method == "centre":
        return em.centre_prior(len(images), size)
    return explain(model, images, methods=(method,), target=labels, **options)[method]


def benchmark(models, data, methods=("attention", "gradcam", "gradcam++", "smoothgrad", "integrated_gradients",
                                     "occlusion", "random", "centre"),
              max_examples=500, batch_size=50, split="test", iou_threshold=0.5, deletion_steps=16, seed=0,
              progress=True, on_row=None, **options):
    """Score every method on every model; returns a list of row dicts (:data:`COLUMNS`).

    `models` maps a label to a model (or is a list of zoo names). Methods a model cannot give
    (``attention`` for a plain baseline) are skipped with a note in the row. ``on_row(row)`` is
    called as each row is finished (``zoo benchmark --json`` keeps them on disk as it goes).
    """
    import zoo

    if not isinstance(models, dict):
        models = {name: zoo.load(name) for name in models}
    unknown = [m for m in methods if m not in METHODS + BASELINES]
    if unknown:
        from zoo.registry import unknown_name_error

        raise unknown_name_error(unknown[0], list(METHODS + BASELINES), "benchmark method")
    images, labels, boxes, masks = load_ground_truth(data, split, max_examples)
    rows = []
    shown = Progress(len(models) * len(methods), f"benchmark: {len(models)} model(s) x {len(methods)} methods on "
                     f"{len(images)} {split} images", progress, unit="row", step_lines=True)
    for label, model in models.items():
        accuracy = top1(model, images, labels, batch_size)
        scored_map = default_map(model) and (options.get("attention_map") or default_map(model))
        for method in methods:
            row = {"model": label, "method": method, "accuracy": accuracy}
            if method == "attention" and scored_map:  # which declared map was scored
                row["map"] = scored_map
            start = time.perf_counter()
            try:
                maps = np.concatenate([method_maps(model, method, images[i : i + batch_size],
                                                   labels[i : i + batch_size], seed + i, **options)
                                       for i in range(0, len(images), batch_size)])
            except ValueError as err:  # e.g. no own attention
                row["note"] = str(err).split(":")[0]
            else:
                row["seconds"] = time.perf_counter() - start
                row.update(score_maps(model, maps, images, labels, boxes, masks, iou_threshold, deletion_steps))
                if method == "attention" and boxes is not None:
                    row.update(patch_scores(model, scored_map, images, labels, boxes, batch_size))
            rows.append({k: float(v) if isinstance(v, (np.floating, float)) else v for k, v in row.items()})
            if on_row is not None:
                on_row(rows[-1])
            shown.advance(f"{label} {method_label(method, row.get('map'))}")
    return rows


def score_maps(model, maps, images, labels, boxes, masks, iou_threshold, deletion_steps):
    """One row's scores of `maps`: deletion / insertion AUC and, with boxes, the pointing game,
    energy in the box and mask IoU."""
    deletion, insertion = em.deletion_insertion(model, images, maps, labels, deletion_steps)
    scores = {"deletion": deletion.mean(), "insertion": insertion.mean()}
    if boxes is not None:
        scores.update(pointing=em.pointing_game(maps, boxes).mean(), energy=em.energy_in_box(maps, boxes).mean(),
                      iou=em.mask_iou(maps, masks, iou_threshold).mean())
    return scores


def patch_scores(model, map_name, images, labels, boxes, batch_size=50):
    """Patch precision / recall of a declared patch map (one with ``patch_logits`` and
    ``patch_window``, :class:`zoo.registry.MapTap`); {} for any other map."""
    from keras import ops

    from zoo import registry, tasks

    tap = registry.feature_info(model).map(map_name)
    if tap.patch_logits is None or tap.patch_window is None:
        return {}
    logits, weights = [], []
    for i in range(0, len(images), batch_size):
        out = model(ops.convert_to_tensor(images[i : i + batch_size].astype("float32")), training=False)
        logits.append(ops.convert_to_numpy(out[tap.patch_logits]))
        weights.append(ops.convert_to_numpy(out[tap.output]))
    multilabel = tasks.task_of(model).name == "multilabel"
    precision, recall = em.patch_precision_recall(np.concatenate(logits), np.concatenate(weights), labels, boxes,
                                                  tap.patch_window, multilabel)
    return {"patch_precision": precision, "patch_recall": recall}


def example_figure(models, data, path, methods=("attention", "gradcam", "gradcam++", "smoothgrad",
                                                 "integrated_gradients", "occlusion"),
                   count=3, split="test", force=True, **options):
    """Write a grid of the first `count` images of `data` (box drawn when the data has boxes): per
    image one row per model, one column per method (empty where a model has no such map); an
    existing `path` is replaced only with `force`."""
    from zoo.explain.figures import save_grid_figure

    images, labels, boxes, _ = load_ground_truth(data, split, count)
    maps = {}  # (model label, method) -> (count, H, W), or None where the model has no such map
    for label, model in models.items():
        for method in methods:
            try:
                maps[label, method] = method_maps(model, method, images, labels, **options)
            except ValueError:  # e.g. no own attention
                maps[label, method] = None
    rows = [(f"{label}\nimage {i}, class {labels[i]}", images[i],
             [None if maps[label, m] is None else maps[label, m][i] for m in methods])
            for i in range(len(images)) for label in models]
    row_boxes = None if boxes is None else [boxes[i] for i in range(len(images)) for _ in models]
    boxed = ", object box in green" if boxes is not None else ""
    return save_grid_figure(path, rows, methods, row_boxes, title=f"explanation maps on the first {len(images)} "
                            f"{split} images of {data}{boxed}", force=force)


def top1(model, images, labels, batch_size=100):
    from keras import ops

    correct = 0
    for i in range(0, len(images), batch_size):
        logits = ops.convert_to_numpy(model(ops.convert_to_tensor(images[i : i + batch_size].astype("float32")),
                                            training=False)["logits"])
        correct += int((logits.argmax(-1) == labels[i : i + batch_size]).sum())
    return correct / len(images)


TABLE_COLUMNS = ("pointing", "energy", "iou", "deletion", "insertion")
PATCH_COLUMNS = ("patch_precision", "patch_recall")


def format_row(row, columns=TABLE_COLUMNS):
    """One markdown row of :func:`format_table`."""
    cells = [f"{row[c]:.3f}" if c in row else "-" for c in columns]
    return f"| {row['model']} | {method_label(row['method'], row.get('map'))} | " + " | ".join(cells) + " |"


def format_table(rows):
    """Markdown: one row per (model, method); patch precision / recall columns when a row has them."""
    patches = any("patch_precision" in row for row in rows)
    columns = TABLE_COLUMNS + (PATCH_COLUMNS if patches else ())
    header = ("| model | method | pointing | energy in box | IoU | deletion AUC (lower better) | insertion AUC "
              "(higher better) |" + (" patch precision | patch recall |" if patches else ""))
    lines = [header, "| --- | --- |" + " ---: |" * len(columns)]
    lines += [format_row(row, columns) for row in rows if "note" not in row]
    return "\n".join(lines)
