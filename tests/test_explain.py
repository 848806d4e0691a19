"""The uniform attention-map API, overlays and predictions."""

import keras
import numpy as np
import pytest
from PIL import Image

import zoo
from zoo import explain, prediction


def test_attention_maps_are_upsampled_to_the_input(tiny_model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    maps = zoo.attention_maps(tiny_model, x)
    assert list(maps) == ["attention"] and maps["attention"].shape == (2, 16, 16)
    raw = np.asarray(tiny_model(x)["attention"])[..., 0]  # 8x8
    np.testing.assert_allclose(maps["attention"].mean(axis=(1, 2)), raw.mean(axis=(1, 2)), rtol=0.05)
    norm = zoo.attention_maps(tiny_model, x, size=(32, 40), normalize=True)["attention"]
    assert norm.shape == (2, 32, 40) and norm.min() == 0.0 and norm.max() == pytest.approx(1.0)


def test_overlay_blends_a_heatmap():
    image = np.zeros((4, 4, 3), "uint8")
    hot = explain.overlay(image, np.ones((4, 4)), alpha=1.0)
    cold = explain.overlay(image, np.zeros((4, 4)), alpha=1.0)
    assert hot[0, 0, 0] > hot[0, 0, 2] and cold[0, 0, 2] > cold[0, 0, 0]  # jet: red hot, blue cold
    np.testing.assert_array_equal(explain.overlay(image + 7, np.ones((4, 4)), alpha=0.0), image + 7)


def test_predict_returns_top_k_with_class_names_and_maps():
    model = zoo.build("abn_resnet20", num_classes=5, input_shape=(16, 16, 3), depth=8, width=4)
    model.zoo_config["class_names"] = ["red", "blue", "green", "cyan", "pink"]
    images = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3)).astype("uint8")
    results = zoo.predict(model, images, top_k=2)
    probabilities = np.asarray(keras.ops.softmax(model(images.astype("float32"))["logits"]))
    assert len(results) == 3
    for result, probs in zip(results, probabilities):
        best = np.argsort(-probs)[:2]
        assert [n for n, _ in result["top_k"]] == [model.zoo_config["class_names"][i] for i in best]
        np.testing.assert_allclose([p for _, p in result["top_k"]], probs[best], rtol=1e-5)
    assert results[0]["attention"]["attention"].shape == (16, 16)


def test_clear_errors_for_bad_inputs(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="RGB channels"):
        zoo.predict(tiny_model, np.zeros((1, 16, 16, 4)))
    with pytest.raises(ValueError, match="takes 16x16 images, got 20x20"):
        zoo.predict(tiny_model, np.zeros((1, 20, 20, 3)))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="bad.png is not a readable image"):
        prediction.load_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="does not exist"):
        prediction.load_image(tmp_path / "missing.png")


def test_predict_files_writes_an_overlay_png(tiny_model, tmp_path):
    Image.fromarray(np.full((40, 30, 3), 120, "uint8")).save(tmp_path / "cat.png")
    Image.fromarray(np.full((40, 30), 50, "uint8")).convert("L").save(tmp_path / "gray.png")
    results = prediction.predict_files(tiny_model, [tmp_path / "cat.png", tmp_path / "gray.png"], 2, tmp_path / "out")
    assert [r["overlay"] for r in results] == [str(tmp_path / "out" / f"{n}.attention.png") for n in ("cat", "gray")]
    for result in results:  # a grey file is drawn as RGB, at its own 3:4 aspect ratio
        assert explain.figure_text(result["overlay"])["panels"][1] == "attention [192x144]"


def test_predict_runs_in_batches_and_gives_the_one_batch_numbers(tiny_model, monkeypatch):
    """Any number of images fits in memory: the model sees `batch_size` at a time, with the same
    predictions as one pass over all of them."""
    images = np.random.default_rng(3).integers(0, 255, (5, 16, 16, 3)).astype("uint8")
    whole = zoo.predict(tiny_model, images, batch_size=5)
    seen = []
    original = prediction.predict_batch
    monkeypatch.setattr(prediction, "predict_batch", lambda model, x, *a: seen.append(len(x)) or original(model, x, *a))
    chunked = zoo.predict(tiny_model, images, batch_size=2)
    assert seen == [2, 2, 1]
    for a, b in zip(whole, chunked):
        assert [n for n, _ in a["predictions"]] == [n for n, _ in b["predictions"]]
        np.testing.assert_allclose(list(b["probabilities"].values()), list(a["probabilities"].values()), rtol=1e-5)
        np.testing.assert_allclose(b["attention"]["attention"], a["attention"]["attention"], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        zoo.predict(tiny_model, images, batch_size=0)


def test_predict_files_streams_and_keeps_what_came_before_a_corrupt_file(tiny_model, tmp_path, monkeypatch):
    for name in ("a", "b"):
        Image.fromarray(np.full((16, 16, 3), 100, "uint8")).save(tmp_path / f"{name}.png")
    (tmp_path / "c.png").write_bytes(b"\x89PNG garbage")
    stream = prediction.iter_predict_files(tiny_model, [tmp_path / n for n in ("a.png", "b.png", "c.png")],
                                           batch_size=1)
    assert [next(stream)["file"], next(stream)["file"]] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    with pytest.raises(ValueError, match="c.png is not a readable image"):
        next(stream)
    monkeypatch.setattr(prediction, "predict_batch", lambda *a: pytest.fail("predicted before checking the paths"))
    with pytest.raises(ValueError, match="missing.png does not exist"):
        prediction.predict_files(tiny_model, [tmp_path / "a.png", tmp_path / "missing.png"])
