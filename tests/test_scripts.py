"""Helpers of the maintainer scripts under scripts/ (publishing weights)."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wall_time_reads_either_engine_history():
    publish = load_script("publish_weights")
    loop = [{"history": [{"seconds": 1800.0}, {"seconds": 1800.0}]}]
    fit = [{"history_fit": {"epoch_seconds": [30.0, 60.0, 90.0]}}]
    assert publish.wall_time(loop).startswith("1.00 h of training steps over 2 recorded epochs")
    assert publish.wall_time(fit).startswith("0.05 h over 3 recorded epochs (model.fit engine")


def test_training_stages_follow_finetuned_from_oldest_first(tmp_path):
    publish = load_script("publish_weights")
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, config in ((first, {"arch": "a"}), (second, {"arch": "a", "finetuned_from": str(first)})):
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(config))
        (directory / "model.weights.h5").write_bytes(b"")
    assert [stage.get("finetuned_from") for stage in publish.training_stages(second)] == [None, str(first)]
