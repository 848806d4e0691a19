"""Tasks: multiclass vs multilabel losses, metrics, data, training, evaluation, prediction, export."""

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.conftest import TINY
from zoo import data, tasks
from zoo.training import setup
from zoo.training.recipe import TrainConfig

ATTRIBUTES = ["reddish", "bluish", "bright"]


def toy_attributes(n=64, size=16, seed=0):
    """Images whose three attributes are visible: a red square, a blue square, a bright background."""
    rng = np.random.default_rng(seed)
    attrs = (rng.random((n, 3)) < 0.5).astype("float32")
    images = rng.integers(0, 40, (n, size, size, 3)).astype("uint8")
    for i, (red, blue, bright) in enumerate(attrs):
        images[i] += np.uint8(80 * bright)
        if red:
            images[i, : size // 2, : size // 2, 0] = 250
        if blue:
            images[i, size // 2 :, size // 2 :, 2] = 250
    return images, attrs


def test_multilabel_loss_is_mean_binary_cross_entropy_and_stable():
    task = tasks.get_task("multilabel")
    logits = np.array([[0.0, 2.0, -3.0], [50.0, -50.0, 1.0]], "float32")
    y = np.array([[1, 0, 0], [1, 0, 1]], "float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    want = -(y * np.log(np.clip(p, 1e-300, 1)) + (1 - y) * np.log(np.clip(1 - p, 1e-300, 1))).mean(axis=1)
    np.testing.assert_allclose(np.asarray(task.loss(y, logits)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(task.probabilities(logits))[0, 0], 0.5)
    assert task.describe(np.array([0.9, 0.2, 0.6]), ATTRIBUTES) == [("reddish", 0.9), ("bright", 0.6)]


def test_roc_auc_and_the_multilabel_evaluator():
    assert tasks.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert tasks.roc_auc([1, 1, 1], [0, 1, 1]) == pytest.approx(0.5)  # ties count half
    assert tasks.roc_auc([0.2, 0.3], [1, 1]) is None
    evaluator = tasks.get_task("multilabel").evaluator(["a", "b"])
    logits = np.array([[1.0, -1.0], [-1.0, -1.0], [2.0, 1.0], [-2.0, 3.0]])
    labels = np.array([[1, 0], [0, 0], [1, 0], [1, 0]], "float32")
    evaluator.update(logits, labels, np.zeros(4))
    result = evaluator.result()
    assert result["per_attribute_accuracy"] == {"a": 0.75, "b": 0.5}
    assert result["mean_accuracy"] == 0.625
    assert result["majority_baseline"] == pytest.approx((0.75 + 1.0) / 2)
    assert result["per_attribute_auc"]["b"] is None and result["mean_auc"] == pytest.approx(2 / 3)


def test_multi_hot_targets_are_refused_by_a_single_label_model():
    """Before: a (B, 40) multi-hot target trained silently as a softmax target."""
    images, attrs = toy_attributes(8)
    source = data.ArraySource(images, attrs, ATTRIBUTES)
    assert source.task == "multilabel"
    model = zoo.build("abn_resnet20", num_classes=3, input_shape=(16, 16, 3), **TINY)
    with pytest.raises(ValueError, match="multilabel but the model is multiclass"):
        setup.check_data(model, source)
    with pytest.raises(ValueError, match="multi-label targets"):
        tasks.get_task("multiclass").check_labels(attrs, 3)
    with pytest.raises(ValueError, match="other than 0 and 1"):
        tasks.get_task("multilabel").check_labels(attrs * 2, 3)


@pytest.mark.parametrize("engine", ["loop", "fit"])
def test_a_multilabel_toy_model_learns_with_both_engines(engine, tmp_path):
    images, attrs = toy_attributes(96)
    train_source = data.ArraySource(images[:64], attrs[:64], ATTRIBUTES)
    test_source = data.ArraySource(images[64:], attrs[64:], ATTRIBUTES)
    config = TrainConfig(epochs=6, batch_size=16, lr=0.05, progress=False, augment=data.AugmentConfig(flip=False))
    build = {"input_shape": (16, 16, 3), **TINY}
    if engine == "loop":
        from zoo.training.loop import train

        model, _ = train("abn_resnet20", train_source, config, output_dir=tmp_path / "m", build_kwargs=build)
    else:
        from zoo.training.fit import fit

        model, _ = fit("abn_resnet20", train_source, config, build_kwargs=build, output_dir=tmp_path / "m")
    assert model.zoo_config["task"] == "multilabel" and model.zoo_config["class_names"] == ATTRIBUTES
    metrics = zoo.evaluate(zoo.load(str(tmp_path / "m")), test_source, batch_size=16, progress=False)
    assert metrics["mean_accuracy"] >= 0.8 > metrics["majority_baseline"]
    assert set(metrics["per_attribute_accuracy"]) == set(ATTRIBUTES)


def test_multilabel_predict_robustness_and_export(tmp_path):
    from zoo import export, robustness

    model = zoo.build("abn_resnet20", num_classes=3, input_shape=(16, 16, 3), task="multilabel", **TINY)
    model.zoo_config["class_names"] = ATTRIBUTES
    images, attrs = toy_attributes(4)
    result = zoo.predict(model, images)[0]
    probs = result["probabilities"]
    assert set(probs) == set(ATTRIBUTES) and abs(sum(probs.values()) - 1.0) > 1e-3  # sigmoids, not a softmax
    assert result["predictions"] == sorted([(k, v) for k, v in probs.items() if v >= 0.5], key=lambda kv: -kv[1])
    scores = robustness.robustness(model, (images, attrs), attacks=("fgsm",), epsilons=(0, 4), max_examples=4)
    assert 0.0 <= scores["fgsm"][4] <= 1.0 and scores["fgsm"][0] != 0.0
    path = export.export(model, tmp_path / "m.tflite", "tflite")
    out = export.tflite_runner(path)(image=images)
    want = 1 / (1 + np.exp(-np.asarray(model(images.astype("float32"))["logits"])))
    np.testing.assert_allclose(out["probabilities"], want, atol=1e-4)
    assert export.read_labels(path) == ATTRIBUTES


def test_attribute_npz_splits_by_id_and_csv_folders(tmp_path):
    images, attrs = toy_attributes(10, size=8)
    ids = np.arange(100, 110)
    np.savez(tmp_path / "faces.npz", x=images, attr=(attrs * 2 - 1).astype("int8"), ids=ids,
             attr_names=np.array(ATTRIBUTES))
    test = data.open_source(str(tmp_path / "faces.npz"), "test")
    train = data.open_source(str(tmp_path / "faces.npz"), "train")
    assert (len(test), len(train)) == (2, 8) and test.task == "multilabel" and test.class_names == ATTRIBUTES
    np.testing.assert_array_equal(test.labels, attrs[[0, 5]])  # ids 100 and 105; -1 became 0
    val, fit = (data.open_source(str(tmp_path / "faces.npz"), split) for split in ("val", "fit"))
    np.testing.assert_array_equal(val.labels, attrs[[1, 6]])  # train divides into val (id % 5 == 1) and fit
    assert len(fit) == 6 and len(val) + len(fit) == len(train)

    folder = tmp_path / "faces"
    (folder / "img").mkdir(parents=True)
    rows = ["file," + ",".join(ATTRIBUTES)]
    for i, (image, attr) in enumerate(zip(images, attrs)):
        Image.fromarray(image).save(folder / "img" / f"{i}.png")
        rows.append(f"img/{i}.png," + ",".join("1" if a else "-1" for a in attr))
    (folder / "attributes.csv").write_text("\n".join(rows) + "\n")
    source = data.open_source(str(folder), image_size=(8, 8))
    assert source.task == "multilabel" and len(source) == 10
    np.testing.assert_array_equal(source.labels, attrs)
    reordered = data.open_source(str(folder), image_size=(8, 8), class_names=ATTRIBUTES[::-1])
    np.testing.assert_array_equal(reordered.labels, attrs[:, ::-1])  # mapped to the model's order by name
    np.testing.assert_array_equal(source.images_at([3])[0], images[3])
    (folder / "attributes.csv").write_text(rows[0] + "\nimg/0.png,1,0,2\n")
    with pytest.raises(ValueError, match="line 2"):
        data.open_source(str(folder), image_size=(8, 8))
