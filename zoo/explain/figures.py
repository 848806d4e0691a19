"""Figures (matplotlib, written as PNG): an image with several maps side by side, and heat-maps.

- :func:`save_map_figure`: the image, then one overlay per map with its title and one colour bar
  shared by all of them (every map in [0, 1]);
- :func:`save_importance_figure`: a matrix (e.g. attributes x channels) as a heat-map;
- :func:`save_grid_figure`: rows of (image, maps), e.g. examples x models against methods.
"""

import numpy as np

from zoo.explain.maps import overlay, upsample


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def enlarge(image, display_size):
    """An RGB uint8 image resized (bicubic) to `display_size` (H, W) for display."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype="uint8"))
    return np.asarray(picture.resize(tuple(display_size)[::-1], Image.BICUBIC))


def save_map_figure(path, image, panels, title=None, display_size=(192, 192), colorbar_label="attention (0-1)",
                    cmap="jet", columns=6):
    """Write the image and one overlay per ``(name, map)`` of `panels` (maps (H, W) in [0, 1]) in
    rows of up to `columns` panels, with the names as panel titles and a shared colour bar;
    returns `path`."""
    plt = _pyplot()
    import matplotlib

    picture = enlarge(image, display_size)
    count = len(panels) + 1
    width, rows = min(count, columns), -(-count // columns)
    fig, grid = plt.subplots(rows, width, figsize=(2.3 * width + 0.6, 2.8 * rows), squeeze=False)
    axes = grid.ravel()
    axes[0].imshow(picture)
    axes[0].set_title("input", fontsize=9)
    for ax, (name, attention) in zip(axes[1:], panels):
        resized = upsample(np.asarray(attention, "float32")[None, ..., None], display_size)[0]
        ax.imshow(overlay(picture, resized, cmap=cmap))
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.axis("off")
    mappable = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap)
    fig.colorbar(mappable, ax=list(axes), fraction=0.02, pad=0.02, label=colorbar_label)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def save_importance_figure(path, matrix, row_names, xlabel="feature channel", title=None,
                           colorbar_label="channel importance (mean mask value)"):
    """Write `matrix` (rows x columns, e.g. attributes x channels) as a heat-map PNG."""
    plt = _pyplot()
    matrix = np.asarray(matrix, "float32")
    height = max(2.5, 0.18 * len(row_names) + 1.2)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.09 * matrix.shape[1] + 3.5), height))
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(row_names)))
    ax.set_yticklabels(row_names, fontsize=7)
    ax.set_xlabel(xlabel)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    if title:
        ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def save_grid_figure(path, rows, column_names, boxes=None, cell_size=1.4, cmap="jet",
                     colorbar_label="relevance (min-max per map)"):
    """Write a grid: each row is ``(row_name, image, [map or None per column])``, the image first
    (with its ``(y0, x0, y1, x1)`` box from `boxes`, one per row, drawn when given), then each
    column's overlay (an empty cell for None); column names on top, one shared colour bar."""
    plt = _pyplot()
    import matplotlib

    columns = len(column_names) + 1
    fig, axes = plt.subplots(len(rows), columns, figsize=(cell_size * columns + 1.2, cell_size * len(rows) + 0.4),
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
    mappable = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap)
    fig.colorbar(mappable, ax=list(axes.flat), fraction=0.015, pad=0.01, label=colorbar_label)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def explain_files(model, paths, methods, out_dir, target=None, display_size=(192, 192), **options):
    """``zoo explain``: per image file, ``<out_dir>/<stem>.explain.png`` with the image and each
    method's map (:func:`zoo.explain.methods.explain`, which takes `options` such as
    ``attention_map="attention_2"``), titled with the explained class or attribute and its
    probability; returns the written paths."""
    from pathlib import Path

    from zoo import tasks
    from zoo.data.images import read_image
    from zoo.explain.methods import explain, method_label, target_indices
    from zoo.hub import model_image_size
    from zoo.prediction import overlay_names

    images = np.stack([read_image(p, model_image_size(model)) for p in paths]).astype("float32")
    maps = explain(model, images, methods, target=target, **options)
    logits = model(images, training=False)["logits"]
    probabilities = np.asarray(tasks.task_of(model).probabilities(logits))
    targets = target_indices(model, images, target)
    names = tasks.label_names_of(model)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for i, (path, name) in enumerate(zip(paths, overlay_names(paths, ".explain.png"))):
        target_i = targets[i]
        title = f"{Path(path).name}: {names[target_i]} ({probabilities[i, target_i]:.1%})"
        panels = [(method_label(method, options.get("attention_map")), maps[method][i]) for method in methods]
        out = Path(out_dir) / name
        written.append(save_map_figure(out, images[i].astype("uint8"), panels, title, display_size,
                                       colorbar_label="relevance (min-max per map)"))
    return written
