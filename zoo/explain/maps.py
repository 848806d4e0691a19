"""The uniform attention-map API and overlays (backend-agnostic: keras.ops + numpy).

Every zoo model returns a dict; its attention maps are the rank-4 outputs whose names start
with ``attention`` (ABN: ``attention``, shape (B, h, w, 1)). :func:`attention_maps` returns
them upsampled to the input size, so overlays look the same for every family.
"""

import numpy as np
from keras import ops

OVERLAY_ALPHA = 0.5


def attention_output_names(outputs):
    """Names of the attention-map outputs of a model output dict (or of ``model.output``)."""
    return sorted(k for k, v in outputs.items() if k.startswith("attention") and len(v.shape) == 4)


def upsample(maps, size):
    """Bilinearly resize maps (B, h, w, C) to `size` (H, W); returns (B, H, W) of channel 0."""
    resized = ops.image.resize(ops.convert_to_tensor(maps, "float32"), tuple(size), interpolation="bilinear")
    return ops.convert_to_numpy(resized)[..., 0]


def normalize_maps(maps):
    """Min-max normalise each map of (B, H, W) to [0, 1] (a constant map becomes 0)."""
    maps = np.asarray(maps, dtype="float32")
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.maximum(span, 1e-12), 0.0).astype("float32")


def attention_maps(model, images, size=None, normalize=False, outputs=None):
    """All attention maps of `model` for `images` (B, H, W, 3), upsampled to (H, W) or `size`.

    Returns ``{name: (B, H, W) float32}``; with ``normalize=True`` each map is min-max scaled to
    [0, 1]. Pass `outputs` (the model's output dict for `images`) to avoid a second forward pass.
    """
    images = np.asarray(images)
    if outputs is None:
        outputs = model(ops.convert_to_tensor(images, "float32"), training=False)
    size = size or images.shape[1:3]
    maps = {name: upsample(outputs[name], size) for name in attention_output_names(outputs)}
    return {k: normalize_maps(v) for k, v in maps.items()} if normalize else maps


def overlay(image, attention, alpha=OVERLAY_ALPHA, cmap="jet"):
    """Blend a (H, W) map in [0, 1] over an RGB uint8 image as a colour heat-map (uint8 RGB)."""
    import matplotlib

    heat = matplotlib.colormaps[cmap](np.clip(attention, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * np.asarray(image, dtype="float32") + alpha * heat
    return np.clip(np.round(blended), 0, 255).astype("uint8")


def save_overlay(path, image, attention, display_size=None, alpha=OVERLAY_ALPHA):
    """Write the overlay of `attention` (H, W, in [0, 1]) on `image` as a PNG, optionally
    enlarged to `display_size` (H, W) so small (32x32) inputs are visible."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype="uint8"))
    if display_size:
        picture = picture.resize(display_size[::-1], Image.BICUBIC)
        attention = upsample(np.asarray(attention, "float32")[None, ..., None], display_size)[0]
    Image.fromarray(overlay(np.asarray(picture), attention, alpha)).save(path)
    return path
