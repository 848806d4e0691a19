"""Predictions with attention maps for image files or arrays (``zoo predict``).

What a prediction is follows the model's task: the top-k classes (multiclass) or the attributes
predicted present (multilabel), each with its probability.
"""

from pathlib import Path

import numpy as np
from keras import ops

from zoo import explain, tasks
from zoo.data.images import as_pixels, check_image_file, check_images, read_image
from zoo.errors import InvalidInput
from zoo.files import overlay_names
from zoo.hub import model_image_size

load_image = read_image  # an image file as RGB uint8 (H, W, 3), optionally resized


def class_names_of(model):
    return tasks.label_names_of(model)


PREDICT_BATCH = 32  # images per forward pass: the memory of a batch, whatever the number of images


def predict(model, images, top_k=5, threshold=None, batch_size=PREDICT_BATCH):
    """Predictions and attention maps for a batch of RGB images in [0, 255].

    Returns a list (one per image) of dicts with ``"predictions"``: ``[(name, probability), ...]``
    (the top-k classes, or the attributes with probability >= `threshold`, default 0.5),
    ``"probabilities"`` (every class or attribute) and ``"attention"``: ``{name: (H, W) map in [0, 1]}``
    (:func:`zoo.explain.display_maps`: sigmoid maps as they are, other kinds min-max normalised).
    The model sees `batch_size` images at a time, so any number of images fits in memory; each
    image's result is the same whatever else is in the call (:func:`maps_per_image`).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive integer, got {batch_size!r}")
    images = np.asarray(images)
    images = images[None] if images.ndim == 3 else images
    results = []
    for start in range(0, max(len(images), 1), batch_size):
        results.extend(predict_batch(model, images[start : start + batch_size], top_k, threshold))
    return results


def predict_batch(model, images, top_k=5, threshold=None):
    """:func:`predict` of one forward pass over all of `images`."""
    task = tasks.task_of(model)
    batch = check_images(model, images)
    outputs = model(ops.convert_to_tensor(batch), training=False)
    probabilities = ops.convert_to_numpy(task.probabilities(outputs["logits"]))
    names = class_names_of(model)
    results = []
    for i, (probs, attention) in enumerate(zip(probabilities, maps_per_image(model, batch, outputs))):
        described = task.describe(probs, names, top_k, threshold)
        results.append({
            "predictions": described,
            "top_k": described,  # the name of this list before the multi-label task existed
            "probabilities": dict(zip(names, map(float, probs))),
            "attention": attention,
        })
    return results


def maps_per_image(model, batch, outputs):
    """Each image's :func:`zoo.explain.display_maps`, independent of the other images of the batch:
    a per-channel map's channels (ranked by their mean mask over the images given) are ranked
    for each image on its own."""
    from zoo import registry

    if not any(tap.kind == "per_channel" for tap in registry.feature_info(model).maps):
        maps = explain.display_maps(model, batch, outputs=outputs)
        return [{k: v[i] for k, v in maps.items()} for i in range(len(batch))]
    outputs = {k: ops.convert_to_numpy(v) for k, v in outputs.items()}
    return [{k: v[0] for k, v in explain.display_maps(model, batch[i : i + 1],
                                                        outputs={k: v[i : i + 1] for k, v in outputs.items()}).items()}
            for i in range(len(batch))]


def predict_files(model, paths, top_k=5, overlay_dir=None, threshold=None, map_name=None, attribute=None,
                  max_maps=None, batch_size=PREDICT_BATCH):
    """:func:`predict` on image files, as a list (:func:`iter_predict_files`, same arguments)."""
    return list(iter_predict_files(model, paths, top_k, overlay_dir, threshold, map_name, attribute, max_maps,
                                   batch_size))


def iter_predict_files(model, paths, top_k=5, overlay_dir=None, threshold=None, map_name=None, attribute=None,
                       max_maps=None, batch_size=PREDICT_BATCH):
    """:func:`predict` on image files, one result per file (its ``"file"`` added) as soon as its
    batch of `batch_size` files is done: memory stays that of one batch, and what was predicted
    before an unreadable file is not lost (a missing file is an error before any work; a corrupt
    one when its batch is read). With `overlay_dir`, writes per input ``<stem>.attention.png``
    (distinct names when inputs share a file name): the map `map_name` (default: the
    architecture's first declared map) over the image as given (its own size and aspect ratio),
    titled with the prediction, with the map's name, kind and scale on its colour bar
    (:mod:`zoo.explain.figures`):

    - a map with one channel per attribute: one panel per attribute predicted present (up to
      `max_maps`, default all), most probable first;
    - and, for a model with per-channel masks (multi-channel attention), ``<stem>.channels.png``
      (the channel-importance matrix, attributes x channels) and ``<stem>.channel_masks.png``
      (the masks of the most important channels of `attribute`, default the most probable one).
    """
    from zoo import registry

    paths = list(paths)
    if not paths:
        raise InvalidInput("no image files given: pass at least one")
    for path in paths:  # the cheap checks first, so that a typo fails before any slow work
        check_image_file(path)
    size = model_image_size(model)
    info = registry.feature_info(model)
    drawn = explain.default_map(model) if map_name is None else map_name
    tap = info.map(drawn) if drawn is not None else None
    if tap is not None and tap.kind == "per_channel":
        raise InvalidInput(f"{drawn!r} holds one mask per channel: draw a per-attribute map instead "
                         f"({', '.join(t.output for t in info.maps if t.kind == 'per_attribute')}); the channel "
                         "masks are drawn for --attribute")
    per_channel = [t.output for t in info.maps if t.kind == "per_channel"]
    names = class_names_of(model)
    if attribute is not None and attribute not in names:
        raise registry.unknown_name_error(attribute, names, "attribute")
    headline = 1 if tasks.task_of(model).name == "multiclass" else 3  # predictions named in a title
    overlays = overlay_names(paths)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images = np.stack([load_image(p, size) for p in chunk])
        results = predict_batch(model, images, top_k, threshold)
        for path, image, result, name in zip(chunk, images, results, overlays[start : start + batch_size]):
            result["file"] = str(path)
            if overlay_dir is not None and tap is not None:
                Path(overlay_dir).mkdir(parents=True, exist_ok=True)
                target = Path(overlay_dir) / name
                picture = read_image(path)  # the file as given, under every figure of it
                result["overlay"] = str(save_prediction_figure(target, path, picture, result, tap, max_maps,
                                                               headline))
                for output in per_channel:
                    chosen = attribute or attributes_to_draw(result, 1)[0]
                    result.update(save_channel_figures(model, image, path, picture, output, chosen, target))
            yield result


def save_prediction_figure(target, path, picture, result, tap, max_maps=None, headline=1):
    """The map of `tap` from one :func:`predict` `result` over `picture` (the pixels of the file
    `path`), titled with the first `headline` predictions (a per-attribute map: one panel per
    attribute drawn)."""
    if tap.kind == "per_attribute":
        shown = attributes_to_draw(result, max_maps)
        panels = [(f"{label} {result['probabilities'][label]:.0%}", result["attention"][f"{tap.output}/{label}"])
                  for label in shown]
        what = "attributes predicted present" if result["predictions"] else "no attribute present; the most probable"
    else:
        panels = [(tap.output, result["attention"][tap.output])]
        what = ", ".join(f"{label} ({probability:.1%})" for label, probability in result["predictions"][:headline]) or (
            "no attribute present")
    note = explain.figures.constant_note([m for _, m in panels]) if tap.unit_range else ""
    return explain.save_map_figure(target, picture, panels, f"{Path(path).name}: {what}{note}",
                                   colorbar_label=tap.scale_label)


def attributes_to_draw(result, count):
    """The attributes predicted present, most probable first (up to `count`, None: all), else the
    most probable ones (3 unless `count` says)."""
    present = [label for label, _ in result["predictions"]]
    if present:
        return present[:count]
    ranked = sorted(result["probabilities"], key=lambda k: -result["probabilities"][k])
    return ranked[: count or 3]


def save_channel_figures(model, image, path, picture, output, attribute, target, num_channels=5):
    """The channel-importance heat-map (attributes x channels) and the masks (on their own 0-1
    scale) of `attribute`'s most important channels of one image (`image` the model's input, drawn
    over `picture`, the pixels of the file `path`); returns the written paths."""
    outputs = model(ops.convert_to_tensor(as_pixels(image[None])), training=False)
    masks = ops.convert_to_numpy(outputs[output])[0]  # (h, w, C, A)
    importance = masks.mean(axis=(0, 1)).T  # (A, C)
    names = class_names_of(model)
    stem = str(target).removesuffix(".attention.png")
    heatmap = explain.save_importance_figure(f"{stem}.channels.png", importance, names,
                                             title=f"{Path(path).name}: channel importance per attribute ({output})")
    index = names.index(attribute)
    top = np.argsort(-importance[index], kind="stable")[:num_channels]
    panels = [(f"ch{c} (mean {importance[index, c]:.2f})", masks[..., c, index]) for c in top]
    note = explain.figures.constant_note([m for _, m in panels])
    masks_path = explain.save_map_figure(f"{stem}.channel_masks.png", picture, panels,
                                         f"{Path(path).name}, {attribute}: masks of its most important channels{note}",
                                         colorbar_label=f"{output}: channel mask (sigmoid, 0-1)")
    return {"channels": str(heatmap), "channel_masks": str(masks_path)}
