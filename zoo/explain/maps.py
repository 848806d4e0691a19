"""The uniform attention-map API and overlays (backend-agnostic: keras.ops + numpy).

Every zoo model returns a dict; which of its outputs are attention maps, and of what kind, is
declared by its architecture (:class:`zoo.registry.FeatureInfo`: ABN ``attention``, a sigmoid map
(B, h, w, 1); LTPA ``attention_s`` softmax-over-space maps and ``attention_scores_s`` raw scores).
:func:`attention_maps` returns them upsampled to the input size, so overlays look the same for
every family; maps with one channel per attribute are split per attribute.
"""

import numpy as np
from keras import ops

from zoo import registry

OVERLAY_ALPHA = 0.45  # the image stays visible under the map


def attention_output_names(model):
    """The declared attention-map outputs of a zoo model, the default (drawn) one first."""
    return registry.feature_info(model).map_names


def default_map(model):
    """The name of the map drawn by default (None for a model without attention maps)."""
    names = attention_output_names(model)
    return names[0] if names else None


def upsample(maps, size):
    """Bilinearly resize maps (B, h, w, C) to `size` (H, W); returns (B, H, W) of channel 0."""
    resized = ops.image.resize(ops.convert_to_tensor(maps, "float32"), tuple(size), interpolation="bilinear")
    return ops.convert_to_numpy(resized)[..., 0]


def patch_boxes(grid, window):
    """The boxes (gh, gw, 4) ``(y0, x0, y1, x1)`` of a patch grid with ``window = (size, stride)``."""
    size, stride = window
    ys, xs = np.meshgrid(np.arange(grid[0]) * stride, np.arange(grid[1]) * stride, indexing="ij")
    return np.stack([ys, xs, ys + size, xs + size], axis=-1)


def patch_map(weights, window, image_size, size=None):
    """Patch weights (B, gh, gw[, 1]) drawn where their patches are: each pixel of the input
    (`image_size`) gets the mean weight of the patch windows (``window = (size, stride)``,
    :attr:`zoo.registry.MapTap.patch_window`) that cover it (0 where none does; equal weights draw
    an even map, not one that counts overlaps), then resized to `size` (default: the input size).
    Returns (B, H, W) float32."""
    weights = np.asarray(weights, "float32").reshape(np.shape(weights)[:3])
    height, width = image_size
    canvas = np.zeros((len(weights), height, width), "float32")
    coverage = np.zeros((height, width), "float32")
    for (y0, x0, y1, x1), weight in zip(patch_boxes(weights.shape[1:3], window).reshape(-1, 4),
                                        weights.reshape(len(weights), -1).T):
        canvas[:, y0:y1, x0:x1] += weight[:, None, None]
        coverage[y0:y1, x0:x1] += 1.0
    canvas = np.where(coverage > 0, canvas / np.maximum(coverage, 1.0), 0.0).astype("float32")
    if size is None or tuple(size) == (height, width):
        return canvas
    return upsample(canvas[..., None], size)


def normalize_maps(maps):
    """Min-max normalise each map of (B, H, W) to [0, 1] (a constant map becomes 0)."""
    maps = np.asarray(maps, dtype="float32")
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.maximum(span, 1e-12), 0.0).astype("float32")


def attention_maps(model, images, size=None, normalize=False, outputs=None, maps=None, attribute=None,
                   num_channels=3):
    """The attention maps of `model` for `images` (B, H, W, 3), upsampled to (H, W) or `size`.

    Returns ``{name: (B, H, W) float32}``, for every declared map or the names in `maps` (a name
    or a list). A per-attribute map (B, h, w, A) gives ``"name/attribute"`` entries, or only the
    one of `attribute`; a per-channel map (B, h, w, C, A) gives ``"name/attribute/ch<c>"`` for the
    `num_channels` channels of highest mean mask value over the batch (the channel importance).
    With ``normalize=True`` each map is min-max scaled to [0, 1]. Pass `outputs` (the model's
    output dict for `images`) to avoid a second forward pass.
    """
    from zoo.data.images import as_pixels
    from zoo.tasks import label_names_of

    info = registry.feature_info(model)
    names = info.map_names if maps is None else ([maps] if isinstance(maps, str) else list(maps))
    taps = [info.map(name) for name in names]
    images = np.asarray(images)
    if outputs is None:
        outputs = model(ops.convert_to_tensor(as_pixels(images)), training=False)
    size = size or images.shape[1:3]
    labels = label_names_of(model)
    wanted = labels if attribute is None else [attribute]
    for label in wanted:
        if label not in labels:
            raise registry.unknown_name_error(label, labels, "attribute")
    result = {}
    for tap in taps:
        value = outputs[tap.output]
        if tap.kind == "per_attribute":
            for label in wanted:
                index = labels.index(label)
                result[f"{tap.output}/{label}"] = upsample(value[..., index : index + 1], size)
        elif tap.kind == "per_channel":
            value = ops.convert_to_numpy(value)
            for label in wanted:
                masks = value[..., labels.index(label)]  # (B, h, w, C)
                for channel in np.argsort(-masks.mean(axis=(0, 1, 2)), kind="stable")[:num_channels]:
                    result[f"{tap.output}/{label}/ch{channel}"] = upsample(masks[..., channel : channel + 1], size)
        elif tap.patch_window is not None:  # the patches' own windows, not the grid stretched over the image
            result[tap.output] = patch_map(ops.convert_to_numpy(value), tap.patch_window, images.shape[1:3], size)
        else:
            result[tap.output] = upsample(value, size)
    return {k: normalize_maps(v) for k, v in result.items()} if normalize else result


def display_maps(model, images, outputs=None, **options):
    """:func:`attention_maps` (same `options`) on the scale figures draw them: maps declared in
    [0, 1] (:attr:`zoo.registry.MapTap.unit_range`, e.g. ABN's sigmoid M) as they are, the others
    min-max normalised per map; every map (B, H, W) in [0, 1]."""
    info = registry.feature_info(model)
    maps = attention_maps(model, images, outputs=outputs, **options)
    return {key: np.clip(value, 0.0, 1.0) if info.map(key.split("/")[0]).unit_range else normalize_maps(value)
            for key, value in maps.items()}


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
