"""Attention maps and overlays for every family (:mod:`zoo.explain.maps`)."""

from zoo.explain.maps import (
    attention_maps,
    attention_output_names,
    default_map,
    normalize_maps,
    overlay,
    save_overlay,
    upsample,
)

__all__ = ["attention_maps", "attention_output_names", "default_map", "normalize_maps", "overlay", "save_overlay",
           "upsample"]
