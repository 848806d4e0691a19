"""Post-hoc explainers, attention-quality metrics and the cluttered-MNIST generator."""

import keras
import numpy as np
import pytest

import zoo
from tests.conftest import SHARED_DATASETS
from zoo.data import cluttered
from zoo.explain import methods
from zoo.explain import metrics as em
from zoo.registry import FeatureInfo, register_model, unregister_model

MNIST = SHARED_DATASETS / "mnist.npz"


def colour_builder(num_classes=2, input_shape=(16, 16, 3), name=None):
    """A fixed network: class 1's logit is the mean of ``ReLU(R - G - 50)`` (how much red there
    is), class 0's the same for green. On an image whose only red is one square, the answer for
    class 1 depends on that square alone."""
    inputs = keras.Input(input_shape, name="image")
    kernel = np.array([[-1.0, 1.0], [1.0, -1.0], [0.0, 0.0]], "float32").reshape(1, 1, 3, 2)
    x = keras.layers.Conv2D(2, 1, kernel_initializer=keras.initializers.Constant(kernel),
                            bias_initializer=keras.initializers.Constant(-50.0), name="colour")(inputs)
    x = keras.layers.ReLU(name="colour_relu")(x)
    logits = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, {"logits": logits}, name=name)


def square_images(count=3, seed=0):
    """Grey noise with a red square at rows/cols 0-7 and a green one at rows/cols 10-15."""
    images = np.random.default_rng(seed).uniform(110, 150, (count, 16, 16, 3)).astype("float32")
    images[:, :8, :8] = (250.0, 30.0, 30.0)
    images[:, 10:, 10:] = (30.0, 250.0, 30.0)
    return images


@pytest.fixture
def region_model():
    register_model("test_region", "test", colour_builder, lambda y, o, task, **k: task.loss(y, o["logits"]),
                   lambda config: FeatureInfo("colour_relu", None, (), (), ("colour",)), num_classes=2,
                   input_shape=(16, 16, 3))
    try:
        yield zoo.build("test_region")
    finally:
        unregister_model("test_region")


def test_gradcam_and_gradient_methods_peak_on_the_region_the_answer_depends_on(region_model):
    images = square_images()
    maps = zoo.explain.explain(region_model, images, methods=("gradcam", "gradcam++", "smoothgrad",
                                                              "integrated_gradients", "occlusion"),
                               target=1, samples=4, steps=8, patch=4, stride=4)
    for method, value in maps.items():
        assert value.shape == (3, 16, 16), method
        inside, outside = value[:, :8, :8].mean(), value[:, 8:, :].mean()
        assert inside > 0.5 and outside < 0.2 * inside, (method, inside, outside)
        assert em.pointing_game(value, [(0, 0, 8, 8)] * 3).all(), method
    green = zoo.explain.explain(region_model, images, methods=("gradcam",), target=0)["gradcam"]
    assert green[:, 10:, 10:].mean() > 0.5 and green[:, :8, :8].max() < 0.1


def test_gradcam_from_matches_eq_1_2_and_is_differentiable():
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 1, (2, 3, 3, 4)).astype("float32")
    gradient = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    want = np.maximum((gradient.mean(axis=(1, 2), keepdims=True) * features).sum(-1), 0)
    np.testing.assert_allclose(np.asarray(methods.gradcam_from(features, gradient)), want, rtol=1e-5)
    # differentiable: d(sum cam)/d(features) = w_k where the map is positive, 0 where ReLU cut it
    import tensorflow as tf

    f = tf.Variable(features)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(methods.gradcam_from(f, tf.constant(gradient)))
    grad = tape.gradient(total, f).numpy()
    weights = gradient.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(grad, np.where(want[..., None] > 0, weights, 0.0) * np.ones_like(features),
                               rtol=1e-5, atol=1e-7)


def test_explain_refuses_unknown_methods_and_targets(region_model):
    images = np.zeros((1, 16, 16, 3), "float32")
    with pytest.raises(ValueError, match="Did you mean: gradcam"):
        zoo.explain.explain(region_model, images, methods=("gradcamm",))
    with pytest.raises(ValueError, match="no attention maps of its own"):
        zoo.explain.explain(region_model, images, methods=("attention",))
    with pytest.raises(ValueError, match="not a class of this model"):
        zoo.explain.explain(region_model, images, methods=("gradcam",), target=5)


def test_own_attention_uses_the_declared_map_of_the_target_attribute():
    from tests.test_attributes import images, tiny

    model = tiny("abn_multitask_faceresnet20")
    x = images(2)
    own = zoo.explain.explain(model, x, methods=("attention",), target="bright", normalize=False)["attention"]
    np.testing.assert_allclose(own, zoo.attention_maps(model, x, attribute="bright")["attention/bright"], atol=1e-6)
    with pytest.raises(ValueError, match="Did you mean: attention"):  # attention_map picks a declared map by name
        zoo.explain.explain(model, x, methods=("attention",), target="bright", attention_map="atention")


def test_pointing_game_energy_and_iou_on_hand_made_maps():
    boxes = np.array([[0, 0, 4, 4], [4, 4, 8, 8]])
    maps = np.zeros((2, 8, 8), "float32")
    maps[0, 1, 1] = 1.0  # inside box 0
    maps[1, 0, 0] = 1.0  # outside box 1
    np.testing.assert_array_equal(em.pointing_game(maps, boxes), [1.0, 0.0])
    np.testing.assert_array_equal(em.pointing_game(maps, boxes, tolerance=4), [1.0, 1.0])
    half = np.zeros((1, 8, 8), "float32")
    half[0, :4, :] = 1.0  # half of the mass in the 4x4 box... of 32 cells, 16 inside
    np.testing.assert_allclose(em.energy_in_box(half, boxes[:1]), [0.5])
    mask = np.zeros((1, 8, 8), bool)
    mask[0, :4, :4] = True
    np.testing.assert_allclose(em.mask_iou(half, mask), [16 / 32])
    np.testing.assert_allclose(em.mask_iou(mask.astype("float32"), mask), [1.0])


def test_deletion_auc_of_a_perfect_map_beats_a_random_one(region_model):
    rng = np.random.default_rng(0)
    images = square_images(4)
    targets = np.ones(4, int)
    perfect = np.zeros((4, 16, 16), "float32")
    perfect[:, :8, :8] = 1.0 + rng.random((4, 8, 8))
    deletion, insertion = em.deletion_insertion(region_model, images, perfect, targets, steps=8)
    rand_deletion, rand_insertion = em.deletion_insertion(region_model, images, em.random_maps(4, (16, 16)), targets,
                                                          steps=8)
    assert (deletion < rand_deletion).all() and (insertion > rand_insertion).all()


def test_blur_and_baselines():
    flat = np.full((1, 9, 9, 3), 7.0, "float32")
    np.testing.assert_allclose(em.blur(flat), flat, rtol=1e-6)  # a constant image stays as it is
    spike = np.zeros((1, 21, 21, 1), "float32")
    spike[0, 10, 10] = 1.0
    blurred = em.blur(spike, radius=2, passes=1)[0, ..., 0]  # one 5x5 box pass: 1/25 on the 5x5 square
    np.testing.assert_allclose(blurred[8:13, 8:13], np.full((5, 5), 1 / 25), rtol=1e-5)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-5) and blurred[7].max() == 0  # mass kept, spread 2 px
    prior = em.centre_prior(2, (9, 9))
    assert prior.shape == (2, 9, 9) and prior[0].argmax() == 40
    assert em.random_maps(1, (4, 4), seed=1).std() > 0


def test_cluttered_mnist_is_deterministic_and_its_boxes_hold_the_digit():
    rng = np.random.default_rng(0)
    digits = np.zeros((20, 28, 28), "uint8")
    for d in digits:
        y, x = rng.integers(4, 14, 2)
        d[y : y + 10, x : x + 6] = 255  # a bar of ink somewhere in the 28x28 frame
    labels = np.arange(20) % 10
    first = cluttered.cluttered_mnist(digits, labels, count=10, canvas=40, clutter=3, seed=3)
    again = cluttered.cluttered_mnist(digits, labels, count=12, canvas=40, clutter=3, seed=3)
    for key in ("x", "y", "boxes", "masks"):
        np.testing.assert_array_equal(first[key], again[key][:10])
    other = cluttered.cluttered_mnist(digits, labels, count=10, canvas=40, clutter=3, seed=4)
    assert not np.array_equal(first["x"], other["x"])
    assert first["x"].shape == (10, 40, 40, 3)
    for x, box, mask in zip(first["x"], first["boxes"], first["masks"]):
        y0, x0, y1, x1 = box
        assert (y1 - y0, x1 - x0) == (10, 6)  # the digit's ink, tight
        assert mask.sum() == 60 and mask[y0:y1, x0:x1].all() and (x[..., 0][mask] == 255).all()
    with pytest.raises(ValueError, match="canvas"):
        cluttered.cluttered_mnist(digits, labels, canvas=20)


@pytest.mark.skipif(not MNIST.exists(), reason="../shared/datasets/mnist.npz is absent")
def test_cluttered_mnist_file_from_the_real_digits(tmp_path):
    path = cluttered.write_npz(tmp_path / "new" / "c.npz", MNIST, train_count=30, test_count=20)  # folder made
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.npz"]  # no scratch file left beside it
    path = cluttered.write_npz(tmp_path / "c.npz", MNIST, train_count=30, test_count=20)
    source = zoo.data.open_source(str(path), "test")
    assert len(source) == 20 and source.class_names == [str(d) for d in range(10)]
    with np.load(path) as f:
        masks, boxes = f["masks_test"], f["boxes_test"]
    for mask, (y0, x0, y1, x1) in zip(masks, boxes):
        assert mask.any() and not mask[:y0].any() and not mask[y1:].any() and not mask[:, :x0].any()
    with pytest.raises(FileExistsError):
        cluttered.write_npz(tmp_path / "c.npz", MNIST, train_count=1, test_count=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "new"]


def test_explain_and_benchmark_commands(tiny_model, tmp_path, capsys):
    import json

    from PIL import Image

    from zoo.cli import main

    zoo.save_model(tiny_model, tmp_path / "m", class_names=["red", "blue"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 16, 16, 3)).astype("uint8")
    boxes = np.array([[2, 2, 10, 10]] * 6)
    masks = em.box_mask(boxes, (16, 16))
    np.savez(tmp_path / "gt.npz", x_test=x, y_test=np.arange(6) % 2, boxes_test=boxes, masks_test=masks)
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    assert main(["explain", str(tmp_path / "m"), str(tmp_path / "a.png"), "--methods", "attention", "gradcam",
                 "--out", str(tmp_path / "figs")]) == 0
    assert [p.split(" [")[0] for p in zoo.explain.figure_text(tmp_path / "figs" / "a.explain.png")["panels"]] == [
        "input (16x16)", "attention", "gradcam"]
    assert main(["explain", str(tmp_path / "m"), str(tmp_path / "a.png"), "--attention-map", "atention",
                 "--out", str(tmp_path / "figs")]) == 2  # a declared map by name, with a suggestion
    assert "Did you mean" in capsys.readouterr().err
    assert main(["benchmark", str(tmp_path / "m"), "--data", str(tmp_path / "gt.npz"), "--methods", "attention",
                 "gradcam", "random", "centre", "--json", str(tmp_path / "b.json"), "--figure", str(tmp_path / "f.png"),
                 "--figure-count", "2", "--quiet"]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())
    assert Image.open(tmp_path / "f.png").size[1] > 150  # 2 images x 1 model, each a row
    before = (tmp_path / "b.json").read_text()
    assert main(["benchmark", str(tmp_path / "m"), "--data", str(tmp_path / "gt.npz"), "--methods", "random",
                 "--json", str(tmp_path / "b.json"), "--quiet"]) == 2  # exists: not replaced without --force
    assert (tmp_path / "b.json").read_text() == before
    assert [r["method"] for r in rows] == ["attention", "gradcam", "random", "centre"]
    assert rows[0]["map"] == zoo.explain.maps.default_map(tiny_model) and "map" not in rows[1]  # which map scored
    centre = rows[-1]
    assert centre["pointing"] == 1.0 and 0 < centre["energy"] < 1  # the centre (7.5, 7.5) is in every box
    printed = capsys.readouterr().out
    assert "| gradcam |" in printed and f"| attention ({rows[0]['map']}) |" in printed
    np.savez(tmp_path / "plain.npz", x_test=x, y_test=np.arange(6) % 2)  # no boxes: deletion/insertion only
    assert main(["benchmark", str(tmp_path / "m"), "--data", str(tmp_path / "plain.npz"), "--methods", "gradcam",
                 "--json", str(tmp_path / "d.json"), "--quiet"]) == 0
    (row,) = json.loads((tmp_path / "d.json").read_text())
    assert "pointing" not in row and 0 <= row["deletion"] <= 1 and 0 <= row["insertion"] <= 1
    assert main(["benchmark", str(tmp_path / "m"), "--data", str(tmp_path / "a.png")]) == 2


def test_explain_defaults_to_the_methods_the_model_supports(tmp_path, capsys):
    """Before: the default --methods (with 'attention') failed on a plain baseline."""
    from PIL import Image

    from zoo.cli import main

    plain = zoo.build("plain_faceresnet20", num_classes=2, input_shape=(32, 32, 3), width=4)
    zoo.save_model(plain, tmp_path / "plain", class_names=["a", "b"])
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype("uint8")).save(tmp_path / "x.png")
    assert main(["explain", str(tmp_path / "plain"), str(tmp_path / "x.png"), "--out", str(tmp_path / "ex")]) == 0
    assert (tmp_path / "ex" / "x.explain.png").exists()
    from zoo.cli import default_explain_methods

    assert default_explain_methods(plain) == ["gradcam", "gradcam++"]
    abn = zoo.build("abn_resnet20", num_classes=2, input_shape=(16, 16, 3), depth=8, width=4)
    assert default_explain_methods(abn) == ["attention", "gradcam", "gradcam++"]
