"""Helpers of the maintainer scripts under scripts/ (publishing weights)."""

import importlib.util
import json
from pathlib import Path

import numpy as np

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


def test_sfocus_separability_measures_top1_and_the_terms_on_test_images(tmp_path):
    import numpy as np

    import zoo
    from tests.conftest import write_toy_npz

    measure = load_script("sfocus_separability").measure
    write_toy_npz(tmp_path / "d.npz", n_test=12)
    model = zoo.build("sfocus_resnet20", num_classes=2, input_shape=(16, 16, 3))
    model.zoo_config["class_names"] = ["red", "blue"]
    row = measure(model, str(tmp_path / "d.npz"), max_examples=10, batch_size=4)
    assert row["num_examples"] == 10 and 0 <= row["top1"] <= 1
    assert 0 <= row["as_last"] <= 1 and 0 <= row["as_inner"] <= 1 and -0.2 <= row["ac"] <= 0.8
    assert np.isfinite(list(row.values())).all()


def test_publish_refuses_a_card_without_preprocessing_and_says_how():
    import pytest

    publish = load_script("publish_weights")
    with pytest.raises(SystemExit, match="--preprocessing"):
        publish.preprocessing_text({}, None, None)
    assert "mean=[0.5, 0.5, 0.5]" in publish.preprocessing_text({}, (0.5,) * 3, (0.25,) * 3)


def test_sfocus_maps_figure_gives_both_classes_maps_per_image():
    import zoo
    from tests.conftest import toy_images

    maps = load_script("sfocus_maps_figure").true_and_confusing_maps
    model = zoo.build("sfocus_resnet20", num_classes=3, input_shape=(16, 16, 3), width=4)
    images, labels = toy_images(4, size=16, num_classes=3)
    true, confusing, which, overlap = maps(model, images.astype("float32"), labels)
    assert true.shape == confusing.shape == (4, 4, 4) and true.min() >= 0 and true.max() <= 1
    assert (which != labels).all() and ((overlap >= 0) & (overlap <= 1)).all()


def test_lba_maps_figure_draws_patch_weights_beside_both_grad_cams(tmp_path):
    import zoo
    from tests.conftest import toy_images

    script = load_script("lba_maps_figure")
    lba = zoo.build("lba_resnet18", num_classes=3, width=0.0625)
    plain = zoo.build("plain_stride1_resnet18", num_classes=3, width=0.0625)
    images, labels = toy_images(2, size=32, num_classes=3)
    rows, columns = script.figure_rows(lba, plain, images.astype("float32"), labels)
    assert len(rows) == 2 and len(columns) == 3 and all(len(maps) == 3 for _, _, maps in rows)
    weights = rows[0][2][0]
    assert weights.shape == (32, 32) and weights.max() == 1 and (weights[29:, :] == 0).all()  # 3 rows under no window
    assert list(script.chosen(3, 10)) == [0, 4, 9] and list(script.chosen(3, 10, first=8)) == [8, 9]
    from zoo.explain.figures import save_grid_figure

    assert save_grid_figure(tmp_path / "f.png", rows, columns) and (tmp_path / "f.png").stat().st_size > 0


def test_lba_benchmark_imports_the_official_model_files_without_torchvision(tmp_path):
    import sys

    import pytest

    bench = load_script("bench_lba_official")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "conv_resnet.py").write_text("from torchvision import datasets, transforms\nVALUE = 3\n")
    assert bench.official_module(tmp_path, "model/conv_resnet.py").VALUE == 3
    assert "torchvision" not in sys.modules or sys.modules["torchvision"].__spec__ is not None  # no stub left
    with pytest.raises(SystemExit, match="checkout of the official"):
        bench.official_module(tmp_path, "model/capsule_resnet.py")


def test_abn_side_by_side_interleaves_variants_and_reports_ratios(tmp_path):
    import pytest

    bench = load_script("bench_abn_official")
    both = bench.variants(["zoo", "official", "latency"], official="repo")
    assert [(v["side"], v["mode"], v["precision"]) for v in both[:4]] == [
        ("official", "train", "fp32"), ("zoo", "train", "fp32"), ("official", "train", "bfloat16"),
        ("zoo", "train", "bfloat16")]
    assert not any(v["side"] == "official" for v in bench.variants(["zoo", "official", "latency"], official=None))
    fp32_only = bench.variants(["zoo", "official", "extra"], official="repo", measured=("fp32",))
    assert {v["precision"] for v in fp32_only} == {"fp32"} and len(fp32_only) == 2 * 2 + 2 * 2
    assert bench.precisions(["bfloat16"]) == ("bfloat16",)
    from zoo.training.recipe import resolve_precision

    assert ("bfloat16" in bench.precisions(["auto"])) == (resolve_precision("auto") == "bfloat16")
    rows = [{"side": "official", "model": "abn_resnet20", "mode": "train", "precision": "fp32",
             "values": [100.0, 90.0, 120.0], "median": 100.0},
            {"side": "zoo", "model": "abn_resnet20", "mode": "train", "precision": "fp32",
             "values": [150.0, 100.0, 240.0], "median": 150.0},
            {"side": "official", "model": "abn_resnet20", "mode": "latency", "precision": "fp32",
             "values": [10.0, 8.0, 12.0], "median": 10.0},
            {"side": "zoo", "model": "abn_resnet20", "mode": "latency", "precision": "tflite fp32",
             "values": [0.5, 0.4, 0.6], "median": 0.5}]
    lines = bench.table(rows).splitlines()
    assert lines[3].endswith("| 1.50x | 2.00x |")  # medians 150 / 100, best rounds 240 / 120
    assert lines[5].endswith("| 20.00x | 20.00x |")  # latency: official / zoo, best = least ms (8 / 0.4)
    with pytest.raises(SystemExit, match="checkout of the official ABN"):
        bench.official_network(tmp_path)


def test_tflite_quantisation_table_matches_keras_in_fp32(tmp_path):
    import zoo
    from tests.conftest import TINY, write_toy_npz

    bench = load_script("eval_tflite")
    model = zoo.build("abn_resnet20", num_classes=2, input_shape=(16, 16, 3), **TINY)
    zoo.save_model(model, tmp_path / "model", class_names=["red", "blue"])
    data = write_toy_npz(tmp_path / "toy.npz", size=16)
    rows = bench.main([str(tmp_path / "model"), "--data", str(data), "--quantize", "none", "int8",
                       "--calibration-count", "16", "--limit", "20", "--json", str(tmp_path / "q.json")])
    assert [row["variant"] for row in rows] == ["keras fp32", "tflite none", "tflite int8"]
    assert rows[1]["top1"] == rows[0]["top1"]  # same logits to float rounding, so the same argmax
    assert rows[2]["bytes"] < rows[1]["bytes"] and rows[2]["latency_ms"] > 0
    assert json.loads((tmp_path / "q.json").read_text())["rows"][2]["variant"] == "tflite int8"


def test_step_profile_attributes_the_time_to_op_types_and_parts():
    profile = load_script("profile_step")
    assert profile.layer_of("StatefulPartitionedCall/gradient_tape/abn_resnet20/att_stage3_block2_1_conv_1/Conv2D"
                            ) == "att_stage3_block2_1_conv_1"
    assert profile.part_of("StatefulPartitionedCall/abn_resnet20/stage2_block1_2_conv_1/Conv2D") == "stage2"
    result = profile.main(["--batch-size", "4", "--warmup", "1", "--steps", "1"])
    assert abs(sum(share for _, share in result["by_type"]) - 1.0) < 1e-6
    assert "Conv2D" in result["by_type"][0][0]  # convolutions (or their gradients) dominate a ResNet step
    assert any(part.startswith("att_stage3") for part, _ in result["by_part"][:5])
    by_kind = profile.zoo_by_kind(result)
    assert by_kind["convolution backward"] > 0 and abs(sum(by_kind.values()) - result["self_time_ms_per_step"]) < 1e-6
    assert profile.kind_of("aten::convolution_backward") == profile.kind_of("_MklNativeConv2DBackpropFilter")
    table = profile.side_by_side({"convolution forward": 3.0, "other": 1.0}, {"convolution forward": 2.0, "other": 2.0})
    assert "| convolution forward | 2.0 | 3.0 | 1.50 |" in table and "| total | 4.0 | 4.0 | 1.00 |" in table


def test_card_licence_follows_the_dataset_named():
    import pytest

    publish = load_script("publish_weights")
    assert "MNIST by LeCun" in publish.license_text("Cluttered translated MNIST 60x60 (...)")
    assert "CIFAR-10 images" in publish.license_text("CIFAR-10 (JPEG q75 copy)")
    assert publish.license_text("CelebA 64x64 subset").startswith("CelebA non-commercial")
    assert publish.license_text("my photos", "CC-BY 4.0") == "CC-BY 4.0"
    with pytest.raises(SystemExit, match="--license"):
        publish.license_text("my photos")


def test_kernel_benchmark_rows_say_which_batch_norm_the_zoo_runs():
    bench = load_script("bench_kernels")
    rows = bench.op_rows(["bfloat16"], batch=2)
    batch_norm = {row.split(" | ")[2]: row.split(" | ")[-1].rstrip(" |") for row in rows if "batch norm" in row}
    assert batch_norm["(2, 16, 16, 10)"] == "Keras ops" and batch_norm["(2, 16, 16, 16)"] == "fused"
    assert len(batch_norm) == len(bench.CHANNELS) and any(row.startswith("| subsample 2") for row in rows)


def test_tflite_latency_variants_and_the_arithmetic_they_are_set_against():
    import keras

    from tests.conftest import TINY

    bench = load_script("bench_tflite")
    inputs = keras.Input((6, 5, 3))
    features = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 6*5 positions x 3*3*3*4
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(features))  # 4*2
    assert bench.multiply_adds(keras.Model(inputs, logits)) == 6 * 5 * 3 * 3 * 3 * 4 + 4 * 2
    rows, macs = bench.measure("abn_resnet20", threads=(1,), rounds=2, repeats=2,
                               build_kwargs={"num_classes": 3, "input_shape": (16, 16, 3), **TINY})
    assert [(r["outputs"], r["threads"], r["xnnpack"]) for r in rows] == [
        ("all", 1, True), ("all", 1, False), ("logits", 1, True), ("logits", 1, False)]
    assert all(len(r["values"]) == 2 and 0 < r["best"] <= r["median"] for r in rows) and macs > 0
    assert bench.table(rows, macs).count("\n") == 1 + len(rows)


def test_inference_benchmark_times_the_three_ways_and_they_agree(tmp_path):
    bench = load_script("bench_inference")
    calls = bench.variants("abn_resnet20", batch=4)
    assert list(calls) == ["eager", "compiled", "compiled, batch norms folded"]
    logits = [np.asarray(call()) for call in calls.values()]
    for other in logits[1:]:
        np.testing.assert_allclose(other, logits[0], atol=1e-3 * np.abs(logits[0]).max())
    rows = bench.measure("abn_resnet20", batch=4, rounds=1)
    assert [r["variant"] for r in rows] == list(calls) and rows[0]["ratio"] == 1.0
    assert all(r["images_per_s"] > 0 and len(r["seconds"]) == 1 for r in rows)


def test_robustness_benchmark_times_both_ways_and_checks_they_agree(tmp_path, capsys):
    from tests.conftest import TINY, write_toy_npz
    from zoo import build, hub

    model = build("abn_resnet20", num_classes=2, input_shape=(16, 16, 3), **TINY)
    model.zoo_config["class_names"] = ["red", "blue"]  # the toy data's
    hub.save_model(model, tmp_path / "m")
    data = write_toy_npz(tmp_path / "toy.npz", n_test=8)
    bench = load_script("bench_robustness")
    report = bench.main([str(tmp_path / "m"), "--data", str(data), "--max-examples", "8", "--rounds", "1",
                         "--json", str(tmp_path / "r.json")])
    (row,) = report["rows"]
    eager, compiled = row["accuracies"]["eager"], row["accuracies"]["compiled, folded"]
    assert set(eager) == set(compiled) == {"fgsm", "pgd", "noise"}
    for attack in eager:  # the same attacks; an image may differ where a gradient is within rounding of zero
        assert max(abs(eager[attack][s] - compiled[attack][s]) for s in eager[attack]) <= 1 / 8
    assert row["same_accuracies"] == (eager == compiled)
    assert all(len(v) == 1 and v[0] > 0 for v in row["seconds"].values())
    assert row["model"] in capsys.readouterr().out and (tmp_path / "r.json").exists()


def test_xla_benchmark_times_graph_and_xla_and_they_agree(tmp_path, capsys):
    bench = load_script("bench_xla")
    bench.main(["--models", "abn_resnet20", "--precisions", "fp32", "--batch-size", "4", "--steps", "1",
                "--rounds", "2", "--json", str(tmp_path / "x.json")])
    rows = json.loads((tmp_path / "x.json").read_text())["rows"]
    assert [(r["mode"], r["xla"]) for r in rows] == [("train", False), ("train", True), ("infer", False),
                                                     ("infer", True)]
    assert all(r["images_per_s"] > 0 and r["first_call_s"] > 0 and len(r["step_seconds"]) == 2 for r in rows)
    assert all(r["max_abs_diff_to_graph"] < 1e-3 for r in rows)  # same weights: same loss and logits
    assert [r["ratio_to_graph"] for r in rows if not r["xla"]] == [1.0, 1.0]
    assert capsys.readouterr().out.count("| `abn_resnet20` |") == 2
