"""Packaging: metadata in setup.cfg; every weight file the manifest lists ships in the wheel."""

import json
from pathlib import Path

from setuptools import setup

WEIGHTS = Path("weights")


def weight_files():
    """``weights/manifest.json`` and every file it lists (installed to share/attention-zoo/weights)."""
    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    return [str(WEIGHTS / "manifest.json")] + sorted(str(WEIGHTS / entry["file"]) for entry in manifest.values())


setup(data_files=[("share/attention-zoo/weights", weight_files())])
