"""No silent wrong answers: each case a user hit gets a clear error or the right number."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.conftest import REPO, TINY, toy_images
from zoo import data, export, files, hub, weights
from zoo.cli import main
from zoo.files import overlay_names
from zoo.prediction import predict

BUILD = {"input_shape": (16, 16, 3), **TINY}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model that tells red, blue and green squares apart (classes in that order)."""
    from zoo.training.loop import train
    from zoo.training.recipe import TrainConfig

    images, labels = toy_images(96, size=16, num_classes=3)
    source = data.ArraySource(images, labels, ["red", "blue", "green"])
    path = tmp_path_factory.mktemp("trained") / "model"
    config = TrainConfig(epochs=6, batch_size=16, lr=0.05, progress=False, seed=0)
    train("abn_resnet20", source, config, output_dir=path, build_kwargs=BUILD)
    return path


def write_folder(root, images, labels, names):
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    return root


def test_evaluate_maps_folder_classes_to_the_model_by_name(trained, tmp_path):
    """Before: a folder with blue/ and red/ was numbered 0, 1 alphabetically: 'blue' scored as 'red'."""
    images, labels = toy_images(48, size=16, num_classes=3, seed=5)
    keep = labels != 2  # only red (0) and blue (1)
    folder = write_folder(tmp_path / "two", images[keep], labels[keep], ["red", "blue", "green"])
    model = zoo.load(str(trained))
    reference = zoo.evaluate(model, (images[keep], labels[keep]), progress=False)["top1"]
    mapped = zoo.evaluate(model, str(folder), progress=False)
    assert reference > 0.9 and mapped["top1"] == pytest.approx(reference)
    assert mapped["per_class_accuracy"]["green"] is None
    write_folder(tmp_path / "two", images[:1], [0], ["purple"])
    with pytest.raises(ValueError, match="not classes of the model.*purple"):
        zoo.evaluate(model, str(folder), progress=False)


def test_pixel_ranges_nan_and_16_bit_files(trained, tmp_path, caplog):
    model = zoo.load(str(trained))
    images, labels = toy_images(8, size=16, num_classes=3, seed=2)
    want = [r["predictions"][0] for r in predict(model, images)]
    unit = [r["predictions"][0] for r in predict(model, images.astype("float32") / 255.0)]
    assert [n for n, _ in unit] == [n for n, _ in want] and "scaling them by 255" in caplog.text
    for p, q in zip(unit, want):
        assert p[1] == pytest.approx(q[1], abs=1e-3)
    bad = images.astype("float32")
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(model, bad)
    with pytest.raises(ValueError, match="undo the mean/std normalisation"):
        predict(model, images.astype("float32") / 127.5 - 1.0)
    with pytest.raises(ValueError, match="empty"):
        predict(model, np.zeros((0, 16, 16, 3), "uint8"))
    # float .npz images (before: cast to uint8, so [0, 1] floats became black)
    np.savez(tmp_path / "floats.npz", x_test=images / 255.0, y_test=labels)
    np.savez(tmp_path / "bytes.npz", x_test=images, y_test=labels)
    floats = zoo.evaluate(model, str(tmp_path / "floats.npz"), progress=False)["top1"]
    assert floats == zoo.evaluate(model, str(tmp_path / "bytes.npz"), progress=False)["top1"] > 0.5
    # a 16-bit grey PNG (before: all white in predict)
    grey = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype("uint16")
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    pixels = zoo.prediction.load_image(tmp_path / "grey16.png")
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255 and 100 < pixels.mean() < 155


def test_a_real_tensorflow_datasets_builder_offline(tmp_path):
    """Before: the tfds path crashed (importlib_resources) and the test mocked it away."""
    from tests.helpers.toy_tfds import ToyAttributes, ToyShapes

    ToyShapes(data_dir=str(tmp_path)).download_and_prepare()
    ToyAttributes(data_dir=str(tmp_path)).download_and_prepare()
    shapes = data.TfdsSource("toy_shapes", "train", image_size=(8, 8), data_dir=str(tmp_path), download=False)
    assert shapes.task == "multiclass" and shapes.class_names == ["square", "circle"] and len(shapes) == 12
    x, y = next(iter(data.make_dataset(shapes, 4, training=True, seed=0)))
    assert x.shape == (4, 8, 8, 3) and y.dtype.name == "int64"
    faces = data.TfdsSource("toy_attributes", "test", image_size=(8, 8), data_dir=str(tmp_path), download=False)
    assert faces.task == "multilabel" and faces.class_names == ["Bald", "Smiling"] and len(faces) == 4
    x, y = next(iter(data.make_dataset(faces, 4)))
    index = np.round(x.numpy()[:, 0, 0, 0] / 30).astype(int)  # the generator wrote 30 * i into image i
    want = [[i % 2 == 1, i % 4 != 0 and i % 4 != 2 or i == 3] for i in index]
    np.testing.assert_array_equal(y.numpy(), np.array(want, "float32"))


def test_a_path_that_does_not_exist_is_no_such_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder or file"):
        data.open_source(str(tmp_path / "my_images"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.open_source(str(tmp_path / "x.npz"))


def test_export_never_overwrites_without_force_and_leaves_no_scratch(tmp_path):
    model = zoo.build("abn_resnet20", num_classes=2, **BUILD)
    model.zoo_config["class_names"] = ["cat", "dog"]
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match="--force"):
        export.export(model, notes, "tflite")
    assert notes.read_text() == "my notes"
    with pytest.raises(FileExistsError, match="is a folder"):
        export.export(model, tmp_path, "tflite")
    stale = tmp_path / ".m.tflite.partial-999999999-abc"  # left by a killed export (no such process)
    stale.mkdir()
    path = export.export(model, tmp_path / "m.tflite", "tflite")
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "notes.txt"]
    assert export.read_labels(path) == ["cat", "dog"]
    assert json.loads(zipfile.ZipFile(path).read("zoo_config.json"))["arch"] == "abn_resnet20"
    x = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3)).astype("uint8")
    np.testing.assert_allclose(export.tflite_runner(path)(image=x)["logits"],
                               model(x.astype("float32"))["logits"], atol=1e-4)  # the packed file still runs
    export.export(model, notes, "tflite", force=True)
    assert export.read_labels(notes) == ["cat", "dog"]
    saved = export.export(model, tmp_path / "sm", "saved_model")
    assert export.read_labels(saved) == ["cat", "dog"]
    with pytest.raises(FileExistsError):
        export.export(model, tmp_path / "sm", "saved_model")
    assert main(["export", "abn_resnet20.cifar10", "--format", "tflite", "--output", str(notes)]) == 2


def test_scratch_names_carry_the_writer_and_only_dead_writers_are_cleaned(tmp_path):
    mine = files.scratch_dir(tmp_path / "out")
    dead = tmp_path / ".out.partial-999999999-x"
    dead.mkdir()
    assert files.remove_stale_scratch(tmp_path) == [dead] and mine.exists()


def test_names_tags_and_aliases():
    assert zoo.list_models("abn_resnet*")[:4] == ["abn_resnet20", "abn_resnet32", "abn_resnet44", "abn_resnet50"]
    assert zoo.list_models("abn_resnet*")[-3:] == ["abn_resnet101", "abn_resnet110", "abn_resnet152"]
    with pytest.raises(ValueError, match="zoo.load"):
        zoo.build("abn_resnet20.cifar10")
    old = zoo.load("ltpa_vgg_att3.cifar10_w025")  # the tag before the compact network had its own name
    new = zoo.load("ltpa_vgg_att3_w025.cifar10")
    assert old.zoo_config["arch"] == "ltpa_vgg_att3_w025" == new.zoo_config["arch"]
    fresh = zoo.build("ltpa_vgg_att3_w025")
    assert fresh.count_params() == new.count_params() < zoo.build("ltpa_vgg_att3").count_params() / 10


def test_offline_and_configuration_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_ZOO_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(weights.WeightsError, match="ATTENTION_ZOO_OFFLINE"):
        zoo.build("abn_resnet50", input_shape=(64, 64, 3), backbone_weights="imagenet")
    monkeypatch.setenv("ATTENTION_ZOO_WEIGHTS", str(tmp_path / "missing"))
    with pytest.raises(weights.WeightsError, match="ATTENTION_ZOO_WEIGHTS"):
        zoo.load("abn_resnet20.cifar10")
    monkeypatch.delenv("ATTENTION_ZOO_WEIGHTS")
    saved = tmp_path / "saved"
    hub.save_model(zoo.build("abn_resnet20", num_classes=2, **BUILD), saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        zoo.load(str(saved))


def test_two_inputs_with_the_same_file_name_get_distinct_overlays(tmp_path):
    names = overlay_names([tmp_path / "a" / "cat.png", tmp_path / "b" / "cat.png", tmp_path / "dog.png"])
    assert names == ["a_cat.attention.png", "b_cat.attention.png", "dog.attention.png"]


def test_every_architecture_declares_taps_and_heads_that_exist():
    """Every architecture in its declared small configuration (``register_model(test_config=...)``):
    a new family is checked here without editing this test."""
    checked, skipped = set(), []
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        if spec.family == "test":
            continue  # throw-away families other tests register
        if spec.test_config is None:
            skipped.append(name)  # declared too heavy; the same builder is checked at a smaller depth
            continue
        model = zoo.build(name, num_classes=3, **spec.test_config)
        info = zoo.registry.feature_info(model)
        layer_names = {layer.name for layer in model.layers}
        assert {info.gradcam_layer, *info.heads} <= layer_names, name
        assert info.inner_layer is None or info.inner_layer in layer_names, name
        assert set(info.map_names) <= set(model.output), name
        assert any(n.startswith(info.feature_layers) for n in layer_names), name
        for tap in info.maps:
            assert len(model.output[tap.output].shape) == (5 if tap.kind == "per_channel" else 4), name
        checked.add(zoo.get_spec(name).family)
    families = {zoo.get_spec(n).family for n in zoo.list_models()} - {"test"}
    assert checked == families and len(skipped) < len(zoo.list_models()) / 3, skipped


def test_finetune_replaces_the_declared_heads_by_name(tmp_path):
    base = zoo.build("abn_resnet20", num_classes=2, **BUILD)
    hub.save_model(base, tmp_path / "base")
    reheaded = zoo.load(str(tmp_path / "base"), num_classes=5)
    heads = set(zoo.registry.feature_info(reheaded).heads)
    for layer in reheaded.layers:
        if layer.weights and layer.name not in heads:
            for a, b in zip(layer.get_weights(), base.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    assert reheaded.get_layer("fc").kernel.shape[-1] == 5
    assert reheaded.output["logits"].shape[-1] == 5 and reheaded.zoo_config["reheaded_from"]


def test_the_wheel_ships_every_weight_file_in_the_manifest(tmp_path):
    """Before: a wheel carried only the ABN weights, so the LTPA names failed offline."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("attention_zoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.rsplit("/", 1)[1] for n in names if "/share/attention-zoo/weights/" in n}
    manifest = weights.load_manifest()
    assert shipped == {"manifest.json", *(entry["file"] for entry in manifest.values())}
    assert not [n for n in names if n.startswith("tests/")]


def test_cli_help_shows_defaults_and_no_tensorflow_banner():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "--help"], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=120)
    assert "(default: 128)" in " ".join(result.stdout.split()) and "--no-flip" in result.stdout
    result = subprocess.run([sys.executable, "-m", "zoo.cli", "list", "ltpa*"], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=120)
    assert result.stdout.split()[0] == "ltpa_vgg16" and "cpu_feature_guard" not in result.stderr


def test_evaluation_data_with_labels_the_model_does_not_have(trained):
    model = zoo.load(str(trained))
    images, labels = toy_images(8, size=16, num_classes=3)
    with pytest.raises(ValueError, match="labels from 0 to 7"):
        zoo.evaluate(model, (images, np.arange(8)), progress=False)
    with pytest.raises(ValueError, match="no images"):
        zoo.evaluate(model, (images[:0], labels[:0]), progress=False)


def package_imports():
    """``{module: {zoo modules it imports}}`` over every import of the package, lazy ones included."""
    import ast

    root = REPO / "zoo"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("zoo") and target not in (name, "zoo"):
                    graph[name].add(target)
    return graph


def test_the_package_has_no_import_cycles():
    """Before: registry <-> weights, abn <-> backbones, explain <-> prediction, data -> training."""
    graph = package_imports()

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)) for n in graph[start])

    cycles = [m for m in graph if reaches(m, m, set())]
    assert not cycles, {m: sorted(graph[m]) for m in cycles}
    assert not [m for m in graph if m.startswith("zoo.data") and any(t.startswith("zoo.training") for t in graph[m])]
    assert not [m for m in graph if m.startswith("zoo.models") and any(t.startswith(("zoo.training", "zoo.explain"))
                                                                      for t in graph[m])]
