"""Every figure the zoo writes (matplotlib, PNG), one look: a title that says what is shown, the
user's image at its own aspect ratio, semi-transparent maps and a labelled colour bar.

- :func:`save_map_figure`: the image, then one overlay per map with its title and one colour bar
  shared by all of them (``zoo predict``, ``zoo explain``, channel masks);
- :func:`save_importance_figure`: a matrix (e.g. attributes x channels) as a heat-map;
- :func:`save_grid_figure`: rows of (image, maps), e.g. examples x models against methods;
- :func:`save_figure` writes any of them (and the confusion matrix and robustness curves) with its
  title, colour-bar labels and panels as PNG text, which :func:`figure_text` reads back.
"""

import numpy as np

from zoo.explain.maps import OVERLAY_ALPHA, overlay, upsample

PANEL_HEIGHT = 192  # display pixels of one image panel (small model inputs are enlarged)
MAX_ASPECT = 4.0  # wider (or taller) images are shown at this aspect ratio
NEARLY_CONSTANT = 0.05  # maps whose values span less than this (on 0-1) are "nearly constant"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def display_size(shape, height=PANEL_HEIGHT):
    """(H, W) showing an image of `shape` `height` pixels tall at its own aspect ratio (clamped
    to ``MAX_ASPECT``)."""
    aspect = min(max(shape[1] / shape[0], 1 / MAX_ASPECT), MAX_ASPECT)
    return height, max(1, round(height * aspect))


def enlarge(image, size):
    """An RGB uint8 image resized (bicubic) to `size` (H, W) for display."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype="uint8"))
    return np.asarray(picture.resize(tuple(size)[::-1], Image.BICUBIC))


def value_span(maps):
    """``(lowest, highest)`` value over all `maps`."""
    values = np.concatenate([np.ravel(m) for m in maps])
    return float(values.min()), float(values.max())


def constant_note(maps):
    """", nearly constant (0.83-0.86)" when the `maps` (on 0-1) span less than ``NEARLY_CONSTANT``, else ""."""
    low, high = value_span(maps)
    return f", nearly constant ({low:.2f}-{high:.2f})" if high - low < NEARLY_CONSTANT else ""


def colorbar(fig, axes, label, cmap="jet", vmin=0.0, vmax=1.0, **kwargs):
    """One colour bar for `axes`, from `vmin` to `vmax`, with its `label` (what and which units)."""
    import matplotlib

    mappable = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(vmin, vmax), cmap=cmap)
    return fig.colorbar(mappable, ax=axes, label=label, **kwargs)


def figure_metadata(fig):
    """What a figure shows, from its artists: its title, its colour bars' labels and its image
    panels (title and pixel size), as PNG text entries."""
    title = fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
    bars = [ax.get_ylabel() or ax.get_xlabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    shown = [(ax.get_title() or ax.get_ylabel(), ax.images[0].get_array().shape) for ax in fig.axes
             if ax.images and ax.get_label() != "<colorbar>"]
    panels = [f"{name} [{shape[0]}x{shape[1]}]" for name, shape in shown]
    return {"Title": title, "Colorbars": " | ".join(bars), "Panels": " | ".join(panels), "Software": "attention-zoo"}


def save_figure(fig, path, force=True, dpi=100):
    """Write `fig` to the PNG `path` (whole or not at all; an existing file replaced only with
    `force`), with :func:`figure_metadata`, and close it; returns `path`."""
    from zoo import files

    try:
        with files.written_file(path, force) as scratch:
            fig.savefig(scratch, dpi=dpi, bbox_inches="tight", format="png", metadata=figure_metadata(fig))
    finally:
        pyplot().close(fig)
    return path


def figure_text(path):
    """What a PNG written by :func:`save_figure` shows: ``{"title": str, "colorbars": [label, ...],
    "panels": ["title [HxW]", ...]}`` (read back from the file)."""
    from PIL import Image

    with Image.open(path) as picture:
        text = dict(picture.text)
    split = lambda key: [part for part in text.get(key, "").split(" | ") if part]  # noqa: E731
    return {"title": text.get("Title", ""), "colorbars": split("Colorbars"), "panels": split("Panels")}


def save_map_figure(path, image, panels, title=None, colorbar_label="attention (0-1)", cmap="jet", columns=6,
                    height=PANEL_HEIGHT, alpha=OVERLAY_ALPHA):
    """Write the image and one overlay per ``(name, map)`` of `panels` (maps (h, w) in [0, 1], at
    any resolution: each is stretched over the whole image) in rows of up to `columns` panels, each
    `height` pixels tall at the image's aspect ratio, with the names as panel titles and one shared
    colour bar; returns `path`."""
    plt = pyplot()
    size = display_size(np.shape(image), height)
    picture = enlarge(image, size)
    count = len(panels) + 1
    width, rows = min(count, columns), -(-count // columns)
    inches = height / 100 + 0.5
    fig, grid = plt.subplots(rows, width, figsize=(inches * size[1] / size[0] * width + 1.0, (inches + 0.3) * rows),
                             squeeze=False)
    axes = grid.ravel()
    axes[0].imshow(picture)
    axes[0].set_title(f"input ({np.shape(image)[1]}x{np.shape(image)[0]})", fontsize=9)
    for ax, (name, attention) in zip(axes[1:], panels):
        resized = upsample(np.asarray(attention, "float32")[None, ..., None], size)[0]
        ax.imshow(overlay(picture, resized, alpha=alpha, cmap=cmap))
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.axis("off")
    colorbar(fig, list(axes), colorbar_label, cmap, fraction=0.02, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def save_importance_figure(path, matrix, row_names, xlabel="feature channel", title=None,
                           colorbar_label="channel importance (mean mask value, 0-1)", value_range=(0.0, 1.0)):
    """Write `matrix` (rows x columns, e.g. attributes x channels) as a heat-map PNG on the fixed
    scale `value_range` (None: the matrix's own range); the title says when it is nearly constant."""
    plt = pyplot()
    matrix = np.asarray(matrix, "float32")
    vmin, vmax = value_range or value_span([matrix])
    height = max(2.5, 0.18 * len(row_names) + 1.2)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.09 * matrix.shape[1] + 3.5), height))
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.set_yticks(range(len(row_names)))
    ax.set_yticklabels(row_names, fontsize=7)
    ax.set_xlabel(xlabel)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    if title:
        ax.set_title(title + constant_note([matrix]), fontsize=10)
    return save_figure(fig, path)


def save_grid_figure(path, rows, column_names, boxes=None, cell_size=1.4, cmap="jet",
                     colorbar_label="relevance (min-max per map)", title=None, force=True):
    """Write a grid: each row is ``(row_name, image, [map or None per column])``, the image first
    (with its ``(y0, x0, y1, x1)`` box from `boxes`, one per row, drawn when given), then each
    column's overlay (an empty cell for None); column names on top, one shared colour bar; an
    existing `path` is replaced only with `force`."""
    plt = pyplot()
    import matplotlib

    columns = len(column_names) + 1
    fig, axes = plt.subplots(len(rows), columns, figsize=(cell_size * columns + 1.2, cell_size * len(rows) + 0.6),
                             squeeze=False)
    for r, (row_name, image, maps) in enumerate(rows):
        image = np.asarray(image, "uint8")
        axes[r, 0].imshow(image)
        axes[r, 0].set_ylabel(row_name, fontsize=7, rotation=0, ha="right", va="center")
        if boxes is not None:
            y0, x0, y1, x1 = boxes[r]
            axes[r, 0].add_patch(matplotlib.patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                                              edgecolor="lime", linewidth=1))
        for c, attention in enumerate(maps, start=1):
            if attention is not None:
                resized = upsample(np.asarray(attention, "float32")[None, ..., None], image.shape[:2])[0]
                axes[r, c].imshow(overlay(image, resized, cmap=cmap))
    for c, name in enumerate(["input"] + list(column_names)):
        axes[0, c].set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    colorbar(fig, list(axes.flat), colorbar_label, cmap, fraction=0.015, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, force)


def explain_files(model, paths, methods, out_dir, target=None, height=PANEL_HEIGHT, progress=True, **options):
    """``zoo explain``: per image file, ``<out_dir>/<stem>.explain.png`` with the image as given
    and each method's map over it (:func:`zoo.explain.methods.explain` of the model's input, which
    takes `options` such as ``attention_map="attention_2"``), titled with the explained class or
    attribute and its probability (`progress`: :class:`zoo.progress.Progress`, one step per
    method); returns the written paths."""
    from pathlib import Path

    from zoo import tasks
    from zoo.data.images import read_image
    from zoo.explain.methods import explain, method_label, target_indices
    from zoo.files import overlay_names
    from zoo.hub import model_image_size
    from zoo.progress import Progress

    pictures = [read_image(p) for p in paths]  # the files as given: drawn under the maps
    size = model_image_size(model)
    images = np.stack([enlarge(p, size) for p in pictures]).astype("float32")  # as read_image(path, size)
    shown = Progress(len(methods), f"explaining {len(paths)} image(s)", progress, unit="method", step_lines=True)
    maps = {}
    for method in methods:
        maps.update(explain(model, images, [method], target=target, **options))
        shown.advance(method)
    logits = model(images, training=False)["logits"]
    probabilities = np.asarray(tasks.task_of(model).probabilities(logits))
    targets = target_indices(model, images, target)
    names = tasks.label_names_of(model)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for i, (path, name) in enumerate(zip(paths, overlay_names(paths, ".explain.png"))):
        target_i = targets[i]
        title = f"{Path(path).name}: {names[target_i]} ({probabilities[i, target_i]:.1%}), explained by"
        panels = [(method_label(method, options.get("attention_map")), maps[method][i]) for method in methods]
        written.append(save_map_figure(Path(out_dir) / name, pictures[i], panels, title,
                                       colorbar_label="relevance (min-max per map)", height=height))
    return written
