"""Predictions with attention maps for image files or arrays (``zoo predict``)."""

from pathlib import Path

import numpy as np
from keras import ops

from zoo import explain
from zoo.hub import model_image_size


def load_image(path, size=None):
    """An image file as RGB uint8 (H, W, 3), resized to `size` (H, W) if given.

    Raises ValueError naming the file when it is missing, not an image, or corrupt.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file {path} does not exist")
    try:
        with Image.open(path) as picture:
            picture = picture.convert("RGB")
            if size is not None and picture.size != (size[1], size[0]):
                picture = picture.resize((size[1], size[0]), Image.BICUBIC)
            return np.asarray(picture, dtype="uint8")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path} is not a readable image ({err}); pass a PNG/JPEG/BMP file") from err


def check_images(model, images):
    """Validate a batch against the model's input; returns float32 (B, H, W, 3)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    expected = model.input.shape
    if images.ndim != 4 or images.shape[-1] != expected[-1]:
        raise ValueError(
            f"expected images of shape (batch, height, width, {expected[-1]}) with RGB channels, got {images.shape}; "
            "convert grayscale/RGBA images to RGB first"
        )
    for axis in (1, 2):
        if expected[axis] is not None and images.shape[axis] != expected[axis]:
            raise ValueError(
                f"this model takes {expected[1]}x{expected[2]} images, got {images.shape[1]}x{images.shape[2]}; "
                "resize them (zoo.prediction.load_image(path, size=...)) or build the model with "
                "input_shape=(None, None, 3)"
            )
    return images.astype("float32")


def class_names_of(model):
    names = (getattr(model, "zoo_config", {}) or {}).get("class_names")
    return list(names) if names else [str(i) for i in range(model.output["logits"].shape[-1])]


def predict(model, images, top_k=5):
    """Top-k classes and attention maps for a batch of RGB images in [0, 255].

    Returns a list (one per image) of dicts ``{"top_k": [(class_name, probability), ...],
    "attention": {name: (H, W) map in [0, 1]}}``.
    """
    batch = check_images(model, images)
    outputs = model(ops.convert_to_tensor(batch), training=False)
    probabilities = ops.convert_to_numpy(ops.softmax(outputs["logits"], axis=-1))
    maps = explain.attention_maps(model, batch, normalize=True, outputs=outputs)
    names = class_names_of(model)
    results = []
    for i, probs in enumerate(probabilities):
        order = np.argsort(-probs)[:top_k]
        results.append({
            "top_k": [(names[j], float(probs[j])) for j in order],
            "attention": {k: v[i] for k, v in maps.items()},
        })
    return results


def predict_files(model, paths, top_k=5, overlay_dir=None, display_size=(256, 256)):
    """:func:`predict` on image files; writes ``<stem>.attention.png`` overlays to `overlay_dir`."""
    size = model_image_size(model)
    images = np.stack([load_image(p, size) for p in paths])
    results = predict(model, images, top_k)
    for path, image, result in zip(paths, images, results):
        result["file"] = str(path)
        if overlay_dir is not None:
            Path(overlay_dir).mkdir(parents=True, exist_ok=True)
            target = Path(overlay_dir) / f"{Path(path).stem}.attention.png"
            attention = result["attention"][explain.attention_output_names(model.output)[0]]
            result["overlay"] = str(explain.save_overlay(target, image, attention, display_size))
    return results
