"""Images as the zoo's models take them: RGB pixels in [0, 255] (numpy and Pillow only).

Every entry point (predict, evaluate, the data sources) goes through :func:`as_pixels` or
:func:`read_image`, so a wrong value range, NaNs, 16-bit files or grey/alpha channels are
converted or refused with a message that says what to do, never passed on silently.
"""

import logging
from pathlib import Path

import numpy as np

from zoo.errors import InvalidInput

log = logging.getLogger(__name__)


def as_pixels(images, where="images"):
    """`images` (..., H, W, 3) as float32 pixels in [0, 255].

    - uint8: as is; uint16 (16-bit files): divided by 257;
    - floats in [0, 1] (the usual ``/ 255`` or ``tf.image.convert_image_dtype`` output) are scaled by
      255, with a warning; floats in [0, 255] as is;
    - NaN/inf, negative values (mean/std-normalised images) or values above 255 are an error.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype("float32")
    if images.dtype == np.uint16:
        return (images.astype("float32") / 257.0).round()
    if images.dtype == bool or not np.issubdtype(images.dtype, np.number):
        raise InvalidInput(f"{where} have dtype {images.dtype}; pass RGB pixels as uint8 or floats in [0, 255]")
    values = images.astype("float32")
    if values.size == 0:
        return values
    if not np.isfinite(values).all():
        raise InvalidInput(f"{where} contain NaN or infinite pixel values; fix or drop those images")
    low, high = float(values.min()), float(values.max())
    if low < 0:
        raise InvalidInput(f"{where} have pixel values from {low:.3g} to {high:.3g}; the zoo's models take RGB pixels "
                         "in [0, 255] and normalise inside the model: undo the mean/std normalisation")
    if high > 255.0:
        raise InvalidInput(f"{where} have pixel values up to {high:.4g}; the zoo's models take RGB pixels in [0, 255] "
                         "(scale 16-bit data by 1/257)")
    if np.issubdtype(images.dtype, np.floating) and high <= 1.0:
        log.warning("%s are floats in [0, 1]; scaling them by 255 (the models take pixels in [0, 255])", where)
        return values * 255.0
    return values


def as_uint8(images, where="images"):
    """:func:`as_pixels`, rounded to uint8 (for in-memory datasets)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round(as_pixels(images, where)), 0, 255).astype("uint8")


def check_image_file(path):
    """`path` as a Path, or a clear error where it is a folder or does not exist."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder; pass image files (e.g. {path}/*.png)")
    if not path.is_file():
        raise InvalidInput(f"image file {path} does not exist")
    return path


def read_image(path, size=None):
    """An image file as RGB uint8 (H, W, 3), resized to `size` (H, W) if given.

    16-bit files are scaled to 8 bits (not clipped), palette and grey images become RGB, an
    alpha channel is composited over black. A missing, non-image or corrupt file is a ValueError
    naming it.
    """
    from PIL import Image, UnidentifiedImageError

    path = check_image_file(path)
    try:
        with Image.open(path) as picture:
            check_image_size(picture, path)
            picture.load()
            pixels = pixels_of(picture)
    except Image.DecompressionBombError:
        raise InvalidInput(f"{path} is too large to decode safely (a decompression bomb?): more than "
                           f"{MAX_PIXELS:,} pixels (zoo.data.images.MAX_PIXELS); resize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InvalidInput(f"{path} is not a readable image ({err}); pass a PNG/JPEG/BMP file") from None
    if size is not None and pixels.shape[:2] != tuple(size):
        pixels = np.asarray(Image.fromarray(pixels).resize((size[1], size[0]), Image.BICUBIC))
    return pixels


MAX_PIXELS = 50_000_000  # ~7000x7000: far above what a model needs, far below what fills the memory


def check_image_size(picture, path, limit=None):
    """Refuse an image too large to decode safely (a decompression bomb) before decoding it."""
    limit = MAX_PIXELS if limit is None else limit
    width, height = picture.size
    if width * height > limit:
        raise InvalidInput(f"{path} is {width}x{height} pixels, more than the limit of {limit:,} "
                           "(zoo.data.images.MAX_PIXELS); resize it first (the models take small images)")


def pixels_of(picture):
    """A Pillow image as RGB uint8, scaling 16/32-bit integer modes instead of clipping them."""
    if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(picture, dtype="float64")
        scale = 257.0 if picture.mode.startswith("I;16") or values.max() > 255 else 1.0
        grey = np.clip(np.round(values / scale), 0, 255).astype("uint8")
        return np.repeat(grey[..., None], 3, axis=-1)
    if picture.mode == "F":
        return np.repeat(as_uint8(np.asarray(picture)[..., None]), 3, axis=-1)
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = np.asarray(picture.convert("RGBA"), dtype="float32")
        return np.round(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype("uint8")
    return np.asarray(picture.convert("RGB"), dtype="uint8")


def check_images(model, images):
    """Validate a batch against the model's input; returns float32 pixels (B, H, W, 3) in [0, 255]
    (:func:`zoo.data.images.as_pixels`: [0, 1] floats are scaled, NaN or normalised input refused)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    expected = model.input.shape
    if images.ndim != 4 or images.shape[-1] != expected[-1]:
        raise InvalidInput(
            f"expected images of shape (batch, height, width, {expected[-1]}) with RGB channels, got {images.shape}; "
            "convert grayscale/RGBA images to RGB first"
        )
    if images.shape[0] == 0:
        raise InvalidInput("the batch is empty: pass at least one image")
    for axis in (1, 2):
        if expected[axis] is not None and images.shape[axis] != expected[axis]:
            raise InvalidInput(
                f"this model takes {expected[1]}x{expected[2]} images, got {images.shape[1]}x{images.shape[2]}; "
                "resize them (zoo.prediction.load_image(path, size=...)) or build the model with "
                "input_shape=(None, None, 3)"
            )
    return as_pixels(images)
