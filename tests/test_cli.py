"""The ``zoo`` command end to end: finetune -> predict / evaluate / export, and the default model."""

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.conftest import REPO, toy_images
from zoo import hub
from zoo.cli import main


@pytest.fixture
def image_folder(tmp_path):
    images, labels = toy_images(24, size=16, num_classes=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "data" / ["red", "blue", "green"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    (tmp_path / "data" / "red" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return tmp_path / "data"


def test_finetune_then_predict_evaluate_export(tiny_model, image_folder, tmp_path, capsys):
    hub.save_model(tiny_model, tmp_path / "pretrained", class_names=["a", "b"])
    out = tmp_path / "finetuned"
    code = main(["finetune", str(tmp_path / "pretrained"), "--data", str(image_folder), "--epochs", "2",
                 "--batch-size", "8", "--lr", "0.05", "--freeze", "--output", str(out), "--no-progress"])
    assert code == 0
    model = zoo.load(str(out))
    assert model.zoo_config["class_names"] == ["blue", "green", "red"]
    assert model.output["logits"].shape[-1] == 3
    np.testing.assert_array_equal(model.get_layer("stage2_block1_1_conv").kernel,
                                  tiny_model.get_layer("stage2_block1_1_conv").kernel)  # frozen
    assert not np.allclose(model.get_layer("stage3_block1_1_conv").kernel,
                           tiny_model.get_layer("stage3_block1_1_conv").kernel)  # trained
    config = json.loads((out / "config.json").read_text())
    assert config["finetuned_from"] and "stem_conv" in config["frozen_layers"]
    assert config["step"] == 2 * config["steps_per_epoch"] > 0  # what weight cards count epochs from

    image = next((image_folder / "green").glob("*.png"))
    capsys.readouterr()
    overlays = str(tmp_path / "ov")
    assert main(["predict", str(image), "--model", str(out), "--overlay-dir", overlays, "--top-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("red", "blue", "green")) and "attention overlay" in printed
    assert (tmp_path / "ov" / f"{image.stem}.attention.png").exists()

    matrix = tmp_path / "confusion.png"
    assert main(["evaluate", str(out), "--data", str(image_folder), "--quiet", "--json", str(tmp_path / "m.json"),
                 "--confusion-matrix", str(matrix)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["num_examples"] == 24 and 0 <= metrics["top1"] <= metrics["top5"] == 1.0
    assert set(metrics["per_class_accuracy"]) == {"blue", "green", "red"} and "  blue" in printed
    assert np.asarray(metrics["confusion_matrix"]).sum() == 24 and matrix.stat().st_size > 1000

    (tmp_path / "m.json").write_text("mine")  # a user's file: refused before any work, left as it was
    assert main(["evaluate", str(out), "--data", str(image_folder), "--quiet", "--json", str(tmp_path / "m.json")]) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "m.json").read_text() == "mine"
    assert main(["evaluate", str(out), "--data", str(image_folder), "--quiet", "--json", str(tmp_path / "m.json"),
                 "--force"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["num_examples"] == 24

    assert main(["export", str(out), "--format", "tflite", "--output", str(tmp_path / "m.tflite")]) == 0
    assert (tmp_path / "m.tflite").stat().st_size > 10_000


def test_errors_are_messages_not_tracebacks(capsys, tmp_path):
    assert main(["predict", str(tmp_path / "nope.png"), "--model", "abn_resnt20.cifar10"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean" in err and "Traceback" not in err
    assert main(["evaluate", "abn_resnet20", "--data", str(tmp_path / "missing.npz")]) == 2


def test_list(capsys):
    assert main(["list", "abn_resnet1*"]) == 0
    assert capsys.readouterr().out.split() == ["abn_resnet101", "abn_resnet110", "abn_resnet152"]


def test_list_pretrained_shows_each_cards_measured_accuracy(capsys):
    from zoo import weights

    assert main(["list", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    manifest = weights.load_manifest()
    assert sorted(line.split()[0] for line in lines) == sorted(manifest)
    tags_per_arch = collections.Counter(entry["arch"] for entry in manifest.values())
    for line in lines:
        entry = manifest[line.split()[0]]
        accuracy = entry["card"]["accuracy"]
        shown = (f"mean attribute accuracy {accuracy['test_mean_accuracy']:.2%}" if "test_mean_accuracy" in accuracy
                 else f"top-1 {accuracy['test_top1']:.2%}")
        assert shown in " ".join(line.split())
        marked = bool(entry.get("default")) and tags_per_arch[entry["arch"]] > 1  # only where there is a choice
        assert ("(default for" in line) == marked, line


def test_default_model_predicts_the_shipped_examples(tmp_path, capsys):
    """README's first command: the shipped ABN weights, no network."""
    examples = sorted((REPO / "examples").glob("*.png"))
    assert examples, "examples/*.png are missing"
    assert main(["predict", *map(str, examples), "--overlay-dir", str(tmp_path), "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    correct = 0
    for example in examples:
        block = printed.split(str(example))[1].splitlines()[1]  # the top-1 line
        correct += Path(example).stem.split("_")[0] in block
        assert (tmp_path / f"{example.stem}.attention.png").exists()
    assert correct >= 3  # file names start with the true class (5 test images, not picked by the model)


def split_folder(root, splits=("train", "test", "val"), n=24):
    images, labels = toy_images(n, size=16, num_classes=2)
    for split in splits:
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / ["red", "blue"][label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}{i}.png")
    return root


def test_finetune_evaluates_test_keeps_best_on_val_and_reports_every_epoch(tiny_model, tmp_path, capsys):
    """Before: finetune skipped test/ unless --test-split test; --no-progress printed nothing until the
    end and then the last epoch twice; no way to keep the best epoch; frozen layers were inherited."""
    data = split_folder(tmp_path / "data")
    hub.save_model(tiny_model, tmp_path / "pre", class_names=["a", "b"])
    first = tmp_path / "frozen"
    assert main(["finetune", str(tmp_path / "pre"), "--data", str(data), "--epochs", "1", "--batch-size", "8",
                 "--freeze", "--no-flip", "--output", str(first), "--no-progress"]) == 0
    assert zoo.load(str(first)).zoo_config["frozen_layers"]
    capsys.readouterr()
    out = tmp_path / "best"
    assert main(["finetune", str(first), "--data", str(data), "--epochs", "3", "--batch-size", "8",
                 "--val-split", "val", "--keep-best", "--output", str(out), "--no-progress"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    epochs = [line for line in lines if "epoch" in line]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]  # one line per epoch, each once
    assert all("test_top1" in e and "val_top1" in e for e in epochs)
    kept = lines[-1]["kept_epoch"]
    assert kept == max(epochs, key=lambda e: (e["val_top1"], -e["epoch"]))["epoch"]
    config = json.loads((out / "config.json").read_text())
    assert config["kept_epoch"] == kept and config["frozen_layers"] == []  # not frozen, not inherited
    assert main(["finetune", str(first), "--data", str(data), "--keep-best", "--output", str(tmp_path / "x")]) == 2
    assert "needs --val-split" in capsys.readouterr().err
    assert main(["train", "abn_resnet20", "--data", str(data), "--val-split", "test", "--keep-best",
                 "--output", str(tmp_path / "y")]) == 2
    assert "optimistic" in capsys.readouterr().err


def test_predict_writes_overlays_where_asked_and_draws_the_chosen_map(tmp_path, capsys, monkeypatch):
    data = split_folder(tmp_path / "data", splits=("train",), n=4)
    image = next((data / "train" / "red").glob("*.png"))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(image), "--model", "ltpa_vgg_att3_w025.cifar10", "--map", "attention_2"]) == 0
    drawn = tmp_path / f"{image.stem}.attention.png"
    assert drawn.exists()  # the current folder, not the data's
    assert not list((data / "train").rglob("*.attention.png"))
    # it is the overlay of attention_2 (not of the default attention_1), on its own scale
    text = zoo.explain.figure_text(drawn)
    assert [p.split(" [")[0] for p in text["panels"]][1:] == ["attention_2"]
    assert text["colorbars"] == ["attention_2: softmax over space\nmin-max per map"]
    assert main(["predict", str(image), "--model", "ltpa_vgg_att3_w025.cifar10", "--map", "attention_7"]) == 2
    assert "Did you mean" in capsys.readouterr().err
