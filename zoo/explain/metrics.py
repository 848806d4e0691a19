"""How well a map points at the object: metrics with ground truth (boxes, pixel masks) and without.

Maps are (B, H, W) at input resolution, non-negative (min-max normalised by
:func:`zoo.explain.methods.explain`). Boxes are ``(y0, x0, y1, x1)`` in pixels, ends exclusive.

- :func:`pointing_game` (Zhang et al., ECCV 2016): a hit when the map's maximum lies in the box
  (within `tolerance` pixels);
- :func:`energy_in_box` (Wang et al., Score-CAM, CVPRW 2020): the share of the map's mass inside
  the box;
- :func:`mask_iou`: Jaccard index of the binarised map (``map >= threshold`` after min-max
  normalisation; default 0.5, the LTPA paper's threshold is not known) with the object's pixel
  mask: the object-discovery measure of LTPA (Jetley et al. 2018, Sec. 4.3);
- :func:`deletion_insertion` (Petsiuk et al., RISE, BMVC 2018): the area under the target's
  probability as the most important pixels are deleted (to black; lower is better) or inserted
  into a blurred copy (higher is better); needs no ground truth.
- Baselines: :func:`random_maps` and :func:`centre_prior`.
"""

import numpy as np
from keras import ops

from zoo import tasks
from zoo.explain.maps import normalize_maps, patch_boxes


def box_mask(boxes, size):
    """Boolean masks (B, H, W) of boxes (B, 4)."""
    height, width = size
    ys, xs = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    boxes = np.asarray(boxes)
    y0, x0, y1, x1 = (boxes[:, i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def patch_precision_recall(patch_logits, patch_weights, labels, boxes, window, multilabel=False):
    """Loss-based attention's patch precision and recall (the official ``patch_eval``), pooled
    over the images: a patch is *predicted positive* when ``sigmoid(f_pc) > 0.5`` for a class c
    of its image, counted only where its weight alpha > 0; it is *ground truth* when its window
    (:func:`patch_boxes`) overlaps the object's box. Recall = |positive, ground truth, alpha > 0| /
    |ground truth| (zeroed patches are misses); precision = the same / |positive, alpha > 0|.

    `patch_logits` (B, gh, gw, K), `patch_weights` (B, gh, gw[, 1]), `labels` (B,) class indices
    or (B, K) multi-hot, `boxes` (B, 4). Returns ``(precision, recall)`` (NaN where undefined)."""
    logits = np.asarray(patch_logits, "float64")
    weights = np.asarray(patch_weights).reshape(logits.shape[:3])
    labels = np.asarray(labels)
    classes = labels > 0.5 if multilabel else np.eye(logits.shape[-1], dtype=bool)[labels.astype(int)]
    positive = ((logits > 0.0) & classes[:, None, None, :]).any(axis=-1) & (weights > 0)  # sigmoid > 0.5
    cells, objects = patch_boxes(logits.shape[1:3], window), np.asarray(boxes)[:, None, None, :]
    truth = ((cells[None, ..., 0] < objects[..., 2]) & (cells[None, ..., 2] > objects[..., 0])
             & (cells[None, ..., 1] < objects[..., 3]) & (cells[None, ..., 3] > objects[..., 1]))
    hits = (positive & truth).sum()
    precision = hits / positive.sum() if positive.any() else float("nan")
    return float(precision), float(hits / truth.sum() if truth.any() else float("nan"))


def pointing_game(maps, boxes, tolerance=0):
    """Per image, 1.0 when the map's maximum is inside the box grown by `tolerance` pixels."""
    maps = np.asarray(maps)
    flat = maps.reshape(len(maps), -1).argmax(axis=1)
    y, x = np.unravel_index(flat, maps.shape[1:])
    boxes = np.asarray(boxes)
    inside = (y >= boxes[:, 0] - tolerance) & (y < boxes[:, 2] + tolerance)
    inside &= (x >= boxes[:, 1] - tolerance) & (x < boxes[:, 3] + tolerance)
    return inside.astype("float64")


def energy_in_box(maps, boxes):
    """Per image, the fraction of the (non-negative) map's sum that lies inside the box."""
    maps = np.clip(np.asarray(maps, "float64"), 0, None)
    inside = (maps * box_mask(boxes, maps.shape[1:])).sum(axis=(1, 2))
    total = maps.sum(axis=(1, 2))
    return np.where(total > 0, inside / np.maximum(total, 1e-12), 0.0)


def mask_iou(maps, masks, threshold=0.5):
    """Per image, IoU of ``normalised map >= threshold`` with the boolean object mask."""
    binary = normalize_maps(maps) >= threshold
    masks = np.asarray(masks, bool)
    union = (binary | masks).sum(axis=(1, 2))
    return np.where(union > 0, (binary & masks).sum(axis=(1, 2)) / np.maximum(union, 1), 0.0)


def blur(images, radius=4, passes=3):
    """A separable box blur applied `passes` times (close to a Gaussian), edges clamped."""
    out = np.asarray(images, "float32")
    width = 2 * radius + 1
    for _ in range(passes):
        for axis in (1, 2):
            padded = np.pad(out, [(0, 0)] * axis + [(radius, radius)] + [(0, 0)] * (out.ndim - axis - 1), mode="edge")
            cumsum = np.cumsum(padded, axis=axis, dtype="float64")
            cumsum = np.concatenate([np.zeros_like(np.take(cumsum, [0], axis=axis)), cumsum], axis=axis)
            upper = np.take(cumsum, range(width, cumsum.shape[axis]), axis=axis)
            lower = np.take(cumsum, range(0, cumsum.shape[axis] - width), axis=axis)
            out = ((upper - lower) / width).astype("float32")
    return out


def deletion_insertion(model, images, maps, targets, steps=16, batch_size=256):
    """``(deletion_auc, insertion_auc)`` per image: the mean target probability over `steps` + 1
    points as the top-ranked pixels of each map are set to 0 (deletion) or copied into a blurred
    version of the image (insertion), from 0 to all pixels (trapezoid rule)."""
    images = np.asarray(images, "float32")
    count, height, width, _ = images.shape
    order = np.argsort(-np.asarray(maps).reshape(count, -1), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(height * width)[None].repeat(count, 0), axis=1)
    ranks = ranks.reshape(count, height, width, 1)
    blurred = blur(images)
    task = tasks.task_of(model)
    curves = {"deletion": [], "insertion": []}
    for k in np.linspace(0, height * width, steps + 1).round().astype(int):
        shown = ranks < k  # the k most important pixels
        variants = {"deletion": np.where(shown, 0.0, images), "insertion": np.where(shown, images, blurred)}
        for name, batch in variants.items():
            curves[name].append(target_probability(model, task, batch, targets, batch_size))
    return tuple(np.trapezoid(np.stack(curves[name]), dx=1.0 / steps, axis=0) for name in ("deletion", "insertion"))


def target_probability(model, task, images, targets, batch_size=256):
    result = []
    for start in range(0, len(images), batch_size):
        logits = model(ops.convert_to_tensor(images[start : start + batch_size]), training=False)["logits"]
        probabilities = ops.convert_to_numpy(task.probabilities(logits))
        result.append(probabilities[np.arange(len(probabilities)), targets[start : start + batch_size]])
    return np.concatenate(result)


def random_maps(count, size, seed=0):
    """Uniform noise maps (B, H, W): the chance level of every metric."""
    return np.random.default_rng(seed).random((count, *size)).astype("float32")


def centre_prior(count, size, sigma=0.25):
    """A Gaussian centred on the image (std `sigma` x the side), the same for every image."""
    height, width = size
    ys = (np.arange(height) - (height - 1) / 2) / (sigma * height)
    xs = (np.arange(width) - (width - 1) / 2) / (sigma * width)
    prior = np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)).astype("float32")
    return np.repeat(prior[None], count, axis=0)
