"""Attention maps, overlays and figures for every family (:mod:`zoo.explain.maps`,
:mod:`zoo.explain.figures`), post-hoc explainers (:mod:`zoo.explain.methods`: :func:`explain`)
and attention-quality metrics (:mod:`zoo.explain.metrics`)."""

from zoo.explain.figures import figure_text, save_importance_figure, save_map_figure
from zoo.explain.maps import (
    attention_maps,
    attention_output_names,
    default_map,
    display_maps,
    normalize_maps,
    overlay,
    save_overlay,
    upsample,
)
from zoo.explain.methods import METHODS, explain

__all__ = ["METHODS", "explain", "attention_maps", "attention_output_names", "default_map", "display_maps",
           "figure_text", "normalize_maps", "overlay", "save_importance_figure", "save_map_figure", "save_overlay",
           "upsample"]
