"""Every figure the zoo writes says what it shows: read back from the PNG (title, colour-bar
labels, panels and their pixel size, :func:`zoo.explain.figure_text`), and drawn as promised
(the user's aspect ratio, a semi-transparent map, one fixed scale where values mean something)."""

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo import explain, prediction
from zoo.explain import figures


def write_image(path, height, width, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype="uint8")).save(path)
    return path


def test_predict_overlay_keeps_the_aspect_ratio_and_names_class_map_kind_and_scale(tiny_model, tmp_path):
    wide, strip = write_image(tmp_path / "wide.png", 480, 640), write_image(tmp_path / "strip.png", 100, 300)
    results = prediction.predict_files(tiny_model, [wide, strip], 1, tmp_path / "out")
    for result, (height, width) in zip(results, ((480, 640), (100, 300))):
        text = explain.figure_text(result["overlay"])
        label, probability = result["predictions"][0]
        note = figures.constant_note([result["attention"]["attention"]])  # a random tiny net's map may be flat
        assert text["title"] == f"{result['file'].split('/')[-1]}: {label} ({probability:.1%}){note}"
        assert text["colorbars"] == ["attention: sigmoid, 0-1"]  # name, kind and scale of ABN's M
        shown = round(192 * width / height)
        assert text["panels"] == [f"input ({width}x{height}) [192x{shown}]", f"attention [192x{shown}]"]


def test_map_panels_blend_the_map_at_alpha_045_over_the_image(tmp_path):
    image = np.full((192, 192, 3), 200, "uint8")
    path = figures.save_map_figure(tmp_path / "f.png", image, [("zeros", np.zeros((4, 4)))], "t")
    blended = explain.overlay(image, np.zeros((192, 192)))
    cold = np.array([0, 0, 127.5 / 255 * 255])  # jet(0): dark blue
    np.testing.assert_allclose(blended[0, 0], np.round(0.55 * 200 + 0.45 * cold), atol=1)
    picture = np.asarray(Image.open(path).convert("RGB"), "float32")
    assert (np.abs(picture - blended[0, 0]).sum(-1) < 6).mean() > 0.15  # the panel is drawn with that colour


def test_sigmoid_maps_are_drawn_as_they_are_other_kinds_min_max(tiny_model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    raw = zoo.attention_maps(tiny_model, x)["attention"]
    np.testing.assert_allclose(explain.display_maps(tiny_model, x)["attention"], raw, atol=1e-6)
    ltpa = zoo.build("ltpa_vgg_att3", num_classes=2, input_shape=(32, 32, 3), width=0.125)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    shown = explain.display_maps(ltpa, x)["attention_1"]
    assert shown.min() == 0.0 and shown.max() == pytest.approx(1.0)  # a softmax over space is not on 0-1


def test_explain_draws_the_users_image_not_the_model_input(tiny_model, tmp_path):
    path = write_image(tmp_path / "photo.png", 300, 400)
    written = figures.explain_files(tiny_model, [path], ["attention", "gradcam"], tmp_path / "ex")
    text = explain.figure_text(written[0])
    assert text["panels"] == ["input (400x300) [192x256]", "attention [192x256]", "gradcam [192x256]"]
    assert text["title"].startswith("photo.png: ") and text["colorbars"] == ["relevance (min-max per map)"]


def test_channel_figures_share_one_labelled_scale_and_say_when_nearly_constant(tmp_path):
    masks = [np.full((4, 4), 0.84), np.full((4, 4), 0.86)]
    assert figures.constant_note(masks) == ", nearly constant (0.84-0.86)"
    assert figures.constant_note([np.zeros((4, 4)), np.ones((4, 4))]) == ""
    image = np.zeros((64, 64, 3), "uint8")
    path = figures.save_map_figure(tmp_path / "m.png", image, [("a", masks[0]), ("b", masks[1])], "masks")
    picture = np.asarray(Image.open(path).convert("RGB"), "int32")
    # on one 0-1 scale two near-equal masks look alike (min-max per mask would make them 0 and 1)
    a, b = (picture[100, x] for x in (300, 500))
    assert np.abs(a - b).max() < 25, (a, b)
    heat = figures.save_importance_figure(tmp_path / "h.png", np.full((3, 8), 0.8), ["x", "y", "z"], title="imp")
    text = explain.figure_text(heat)
    assert text["title"] == "imp, nearly constant (0.80-0.80)"
    assert text["colorbars"] == ["channel importance (mean mask value, 0-1)"]


def test_confusion_matrix_states_model_data_accuracy_and_units(tmp_path):
    from zoo.evaluation import save_confusion_matrix

    metrics = {"confusion_matrix": [[3, 1], [0, 4]], "per_class_accuracy": {"a": 0.75, "b": 1.0}, "top1": 0.875,
               "num_examples": 8}
    path = save_confusion_matrix(metrics, tmp_path / "cm.png", title="m on d (test)")
    text = explain.figure_text(path)
    assert text["title"] == "m on d (test)\ntop-1 87.50% on 8 images" and text["colorbars"] == ["images"]


def test_robustness_plot_names_data_and_count_on_one_accuracy_axis(tmp_path):
    from zoo import robustness as zr

    results = zr.Accuracies({"fgsm": {0: 0.9, 8: 0.45}, "noise": {0: 0.9, 32: 0.1}}, num_examples=50)
    figure = zr.curves_figure({"toy": results}, data="cifar (test)")
    assert [ax.get_ylim() for ax in figure.axes] == [(0.0, 100.0)] * 2
    path = zr.plot_curves({"toy": results}, tmp_path / "r.png", data="cifar (test)")
    assert explain.figure_text(path)["title"] == "accuracy under attack on cifar (test), 50 images"


def test_benchmark_grid_has_a_title_and_a_labelled_colour_bar(tiny_model, tmp_path):
    from zoo.explain.benchmark import example_figure

    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    np.savez(tmp_path / "d.npz", x_test=x, y_test=np.arange(4) % 2)
    path = example_figure({"tiny": tiny_model}, str(tmp_path / "d.npz"), tmp_path / "g.png", ["attention"], count=2)
    text = explain.figure_text(path)
    assert text["title"].startswith("explanation maps on the first 2 test images of ")
    assert text["colorbars"] == ["relevance (min-max per map)"] and len(text["panels"]) == 4
