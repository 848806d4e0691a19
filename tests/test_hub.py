"""Saving, loading and re-heading zoo models."""

import json

import numpy as np
import pytest

import zoo
from zoo import hub


def test_save_load_round_trip_keeps_outputs_and_class_names(tiny_model, tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    hub.save_model(tiny_model, tmp_path / "m", class_names=["red", "blue"])
    loaded = zoo.load(str(tmp_path / "m"))
    for key, value in tiny_model(x).items():
        np.testing.assert_allclose(loaded(x)[key], value, rtol=1e-6, atol=1e-6)
    assert loaded.zoo_config["class_names"] == ["red", "blue"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["build"]["width"] == 4


def test_reheading_keeps_the_trunk_and_replaces_class_dependent_layers(tiny_model, tmp_path):
    hub.save_model(tiny_model, tmp_path / "m")
    reheaded = zoo.load(str(tmp_path / "m"), num_classes=5)
    assert reheaded(np.zeros((1, 16, 16, 3), "float32"))["logits"].shape == (1, 5)
    np.testing.assert_array_equal(reheaded.get_layer("stem_conv").kernel, tiny_model.get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(reheaded.get_layer("stage3_block1_1_conv").kernel,
                                  tiny_model.get_layer("stage3_block1_1_conv").kernel)
    assert reheaded.get_layer("fc").kernel.shape == (16, 5)
    assert reheaded.zoo_config["class_names"] is None


def test_failed_save_leaves_the_previous_model_intact(tiny_model, tmp_path, monkeypatch):
    hub.save_model(tiny_model, tmp_path / "m", class_names=["a", "b"])
    before = sorted(p.name for p in tmp_path.iterdir())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(tiny_model), "save_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        hub.save_model(tiny_model, tmp_path / "m", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert zoo.load(str(tmp_path / "m")).zoo_config["class_names"] == ["a", "b"]


def test_save_needs_a_zoo_model(tmp_path):
    import keras

    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="zoo.build"):
        hub.save_model(plain, tmp_path / "x")
