"""Nothing lost, nothing outside its folder, no traceback (issue 15).

Each test names the case that behaved wrongly before; CLI cases go through the CLI (``main``
in-process, or a subprocess where only a subprocess sees the behaviour: stderr of the native
runtime, the exit code of argparse).
"""

import json
import os
import platform
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.conftest import REPO, TINY, toy_images, write_toy_npz
from zoo import data, errors, files, hub
from zoo.cli import build_parser, main

BUILD = {"input_shape": (16, 16, 3), **TINY}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A saved tiny (untrained) model and a tiny .npz data set."""
    root = tmp_path_factory.mktemp("reliability")
    model = zoo.build("abn_resnet20", num_classes=2, **BUILD)
    hub.save_model(model, root / "model", class_names=["red", "blue"])
    write_toy_npz(root / "toy.npz", n_train=32, n_test=16)
    return root


def run_cli(capsys, *argv):
    """``(exit code, stderr)`` of ``zoo ARGV`` in this process (argparse errors included)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: bad option values
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def train_argv(workspace, output, *extra):
    return ["train", "abn_resnet20", "--data", workspace / "toy.npz", "--image-size", 16, 16, "--model-arg",
            "depth=8", "--model-arg", "width=4", "--batch-size", 16, "--epochs", 1, "--test-split", "",
            "--no-progress", "--output", output, *extra]


# -- 1. a user's files are never lost ---------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["evaluate", "MODEL", "--data", "DATA", "--json", "OUT", "--force"],
    ["evaluate", "MODEL", "--data", "DATA", "--confusion-matrix", "OUT", "--force"],
    ["robustness", "MODEL", "--data", "DATA", "--plot", "OUT", "--force"],
    ["robustness", "MODEL", "--data", "DATA", "--json", "OUT", "--force"],
    ["benchmark", "MODEL", "--data", "DATA", "--figure", "OUT", "--force"],
    ["benchmark", "MODEL", "--data", "DATA", "--json", "OUT", "--force"],
])
def test_force_never_replaces_a_folder_with_a_file(workspace, tmp_path, capsys, argv):
    """Before: ``--json results/ --force`` deleted the folder and its contents (exit 0)."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "mine.txt").write_text("a week of work")
    names = {"MODEL": workspace / "model", "DATA": workspace / "toy.npz", "OUT": results}
    code, err = run_cli(capsys, *[names.get(a, a) for a in argv])
    assert code == 2 and "is a folder" in err
    assert (results / "mine.txt").read_text() == "a week of work" and os.listdir(results) == ["mine.txt"]


def test_replace_refuses_to_put_a_file_over_a_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(errors.OutputRefused):
        files.write_text(tmp_path / "folder", "x", force=True)
    scratch = files.scratch_file(tmp_path / "folder")
    with pytest.raises(errors.OutputRefused):
        files.replace(scratch, tmp_path / "folder")
    assert (tmp_path / "folder").is_dir()
    (tmp_path / "folder" / "earlier.attention.png").write_bytes(b"png")  # a folder of derived names may exist
    assert files.check_output(tmp_path / "folder", kind="container") == tmp_path / "folder"
    with pytest.raises(errors.OutputRefused, match="is a file"):
        files.check_output(scratch, kind="container")


def test_train_checks_its_output_before_any_work(workspace, tmp_path, capsys, monkeypatch):
    """Before: an earlier model was replaced silently; a non-model folder or a file was refused
    only after training (the trained weights thrown away), the file case as a traceback."""
    from zoo.training import loop

    monkeypatch.setattr(loop.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking the output"))
    code, err = run_cli(capsys, *train_argv(workspace, workspace / "model"))
    assert code == 2 and "already exists" in err and "--force" in err
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    for force in ([], ["--force"]):
        code, err = run_cli(capsys, *train_argv(workspace, other, *force))
        assert code == 2 and "holds other files" in err and (other / "holiday.jpg").read_bytes() == b"jpeg"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    code, err = run_cli(capsys, *train_argv(workspace, a_file, "--force"))
    assert code == 2 and "is a file" in err and a_file.read_text() == "mine"
    code, err = run_cli(capsys, "finetune", workspace / "model", "--data", workspace / "toy.npz",
                        "--output", workspace / "model")
    assert code == 2 and "already exists" in err


def test_train_force_replaces_an_earlier_model(workspace, tmp_path, capsys):
    out = tmp_path / "run"
    hub.save_model(zoo.build("abn_resnet20", num_classes=2, **BUILD), out, class_names=["x", "y"])
    code, err = run_cli(capsys, *train_argv(workspace, out, "--force", "--max-steps", 1))
    assert code == 0, err
    assert zoo.load(str(out)).zoo_config["class_names"] == ["red", "blue"]  # the new model, not the old one


@pytest.mark.parametrize("engine", ["loop", "fit"])
def test_a_diverging_run_stops_saves_nothing_and_keeps_good_checkpoints(workspace, tmp_path, capsys, engine):
    """Before: the fit engine saved a NaN model with exit 0; the loop engine stopped as a traceback."""
    out, ckpt = tmp_path / "model", tmp_path / "ckpt"
    code, err = run_cli(capsys, *train_argv(workspace, out, "--engine", engine, "--lr", "1e6", "--epochs", 5,
                                            "--checkpoint-dir", ckpt, "--checkpoint-every", 1, "--momentum", 0.99))
    assert code == 2 and "--lr" in err and "nothing was saved as trained" in err, err
    assert not out.exists()
    import tensorflow as tf

    checkpoints = [tf.train.latest_checkpoint(str(ckpt))] if engine == "loop" else list(ckpt.rglob("*.weights.h5"))
    for checkpoint in filter(None, checkpoints):
        if engine == "loop":
            reader = tf.train.load_checkpoint(checkpoint)
            values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "model" in k]
        else:
            import h5py

            with h5py.File(checkpoint) as f:
                values = []
                f.visititems(lambda _, item: values.append(item[()]) if isinstance(item, h5py.Dataset) else None)
        assert values and all(np.isfinite(np.asarray(v, dtype="float64")).all() for v in values
                              if np.asarray(v).dtype.kind == "f")


def test_recipes_that_cannot_train_are_refused(workspace, tmp_path, capsys):
    """Before: --epochs 0 saved an untrained model as trained; --resume without --checkpoint-dir
    trained from scratch without a word; --schedule step ignored --warmup-epochs."""
    from zoo.training.loop import TrainConfig, train

    code, err = run_cli(capsys, *train_argv(workspace, tmp_path / "m", "--epochs", 0))
    assert code == 2 and "--epochs" in err and "out of range" in err
    code, err = run_cli(capsys, *train_argv(workspace, tmp_path / "m", "--resume"))
    assert code == 2 and "--checkpoint-dir" in err
    code, err = run_cli(capsys, *train_argv(workspace, tmp_path / "m", "--schedule", "step", "--warmup-epochs", 2))
    assert code == 2 and "warm-up" in err
    source = data.open_source(str(workspace / "toy.npz"), image_size=(16, 16))
    with pytest.raises(errors.InvalidInput, match="epochs must be at least 1"):
        train("abn_resnet20", source, TrainConfig(epochs=0, batch_size=16, progress=False), build_kwargs=BUILD)
    assert not (tmp_path / "m").exists()


def test_resume_checks_architecture_builder_arguments_and_data(workspace, tmp_path, capsys):
    """Before: --resume on other --data resumed and recorded nothing; a changed --model-arg called two
    good checkpoints unreadable and suggested removing them."""
    ckpt = tmp_path / "ckpt"
    base = train_argv(workspace, tmp_path / "m", "--checkpoint-dir", ckpt, "--checkpoint-every", 1)
    code, err = run_cli(capsys, *base)
    assert code == 0, err
    record = json.loads((ckpt / "run_config.json").read_text())
    assert record["arch"] == "abn_resnet20" and record["build"]["width"] == 4
    assert record["data"]["examples"] == 32 and record["data"]["origin"].endswith("toy.npz")
    assert record["data"]["bytes"] == (workspace / "toy.npz").stat().st_size

    wider = [a if a != "width=4" else "width=8" for a in base]
    code, err = run_cli(capsys, *wider, "--resume", "--force")
    assert code == 2 and "width 4 -> 8" in err and "unreadable" not in err
    other = tmp_path / "other.npz"
    write_toy_npz(other, n_train=48, n_test=16)
    moved = [other if a == workspace / "toy.npz" else a for a in base]
    code, err = run_cli(capsys, *moved, "--resume", "--force")
    assert code == 2 and "data:" in err and "examples 32 -> 48" in err
    code, err = run_cli(capsys, *base, "--resume", "--force")
    assert code == 0, err  # the same run resumes
    code, err = run_cli(capsys, *base, "--resume", "--force", "--epochs", 3)
    assert code == 2 and "epochs: 1 -> 3" in err


def test_the_fit_engine_checks_resume_the_same_way(workspace, tmp_path):
    from zoo.training.fit import fit
    from zoo.training.recipe import TrainConfig

    source = data.open_source(str(workspace / "toy.npz"), image_size=(16, 16))
    config = TrainConfig(epochs=1, batch_size=16, progress=False, checkpoint_dir=str(tmp_path / "c"),
                         checkpoint_every=1)
    fit("abn_resnet20", source, config, build_kwargs=BUILD)
    with pytest.raises(errors.ResumeMismatch, match="depth 8 -> 14"):
        fit("abn_resnet20", source, config, build_kwargs={**BUILD, "depth": 14}, resume=True)


# -- 2. nothing read or written outside the folders the user named ----------------------------
def test_overlays_of_inputs_sharing_a_stem_stay_inside_the_folder(workspace, tmp_path, capsys, monkeypatch):
    """Before: a/cat.png and a/cat.jpg both went to one file at the filesystem root."""
    (tmp_path / "a").mkdir()
    image = toy_images(1, size=16)[0][0]
    Image.fromarray(image).save(tmp_path / "a" / "cat.png")
    Image.fromarray(image).save(tmp_path / "a" / "cat.jpg")
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, "predict", "a/cat.png", "a/cat.jpg", "--model", workspace / "model",
                        "--overlay-dir", "ov")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "ov")) == ["cat_jpg.attention.png", "cat_png.attention.png"]
    code, err = run_cli(capsys, "explain", workspace / "model", "a/cat.png", "a/cat.jpg", "--methods", "gradcam",
                        "--out", "ex")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "ex")) == ["cat_jpg.explain.png", "cat_png.explain.png"]


def test_overlay_names_are_plain_and_distinct():
    from zoo.files import overlay_names

    names = overlay_names(["/cat.png", "/x/cat.png", "x/cat.jpg", "c:d.png", ".hidden.png", "/x/cat.png"])
    assert len(set(names)) == len(names) and all(os.sep not in n and not n.startswith(".") for n in names)


@pytest.mark.parametrize("row", ["../outside/x.png", "/abs/path.png", "sub/../../x.png"])
def test_attribute_rows_outside_the_data_folder_are_refused(tmp_path, row):
    """Before: an attributes.csv row ../outside/x.png or /abs/path.png was read silently."""
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.fromarray(toy_images(1, size=8)[0][0]).save(tmp_path / "x.png")
    Image.fromarray(toy_images(1, size=8)[0][0]).save(folder / "in.png")
    (folder / "attributes.csv").write_text(f"file,Smiling\nin.png,1\n{row},0\n")
    with pytest.raises(errors.InvalidInput, match="line 3: .* is outside the data folder"):
        data.open_source(str(folder))


def test_offline_mode_covers_datasets_without_touching_the_network(tmp_path, monkeypatch):
    """Before: ATTENTION_ZOO_OFFLINE=1 with tfds:mnist made 32 connection attempts and hung."""
    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted in offline mode")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("ATTENTION_ZOO_OFFLINE", "1")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(errors.OfflineError, match="tfds:mnist is not prepared"):
        data.TfdsSource("mnist", data_dir=str(tmp_path))
    from tests.helpers.toy_tfds import ToyShapes

    ToyShapes(data_dir=str(tmp_path)).download_and_prepare()  # a prepared dataset still loads offline
    assert len(data.TfdsSource("toy_shapes", data_dir=str(tmp_path))) == 12


# -- 3. every error is a sentence ---------------------------------------------------------------
def damaged(workspace, tmp_path, what):
    target = tmp_path / what
    target.mkdir()
    for name in ("config.json", "model.weights.h5"):
        (target / name).write_bytes((workspace / "model" / name).read_bytes())
    if what == "truncated":
        weights = (target / "model.weights.h5").read_bytes()
        (target / "model.weights.h5").write_bytes(weights[: len(weights) // 2])
    elif what == "bogus_arg":
        config = json.loads((target / "config.json").read_text())
        config["build"]["bogus"] = 1
        (target / "config.json").write_text(json.dumps(config))
    else:
        (target / "config.json").write_text(what)
    return target


@pytest.mark.parametrize("case, expected", [
    ("model_arg", "no builder argument 'bogus'.*Its arguments are: .*width"),
    ("at_arg", "no builder argument 'bogus'"),
    ("bogus_arg", "no builder argument 'bogus'"),
    ("{}", "not a zoo model config"),
    ("[]", "not a zoo model config"),
    ("truncated", "model.weights.h5 cannot be loaded.*truncated"),
    ("evaluate_batch_0", "--batch-size: 0 is out of range"),
    ("train_batch_0", "--batch-size: 0 is out of range"),
    ("max_examples_0", "--max-examples: 0 is out of range"),
    ("bomb", "too large"),
    ("predict_folder", "is a folder; pass image files"),
    ("data_file", "is a file, not a dataset"),
    ("explain_map", "Unknown attention map 'bogus'.*attention"),
    ("benchmark_map", "Unknown attention map 'bogus'"),
    ("explain_target", "Unknown class or attribute 'kitten'.*red, blue"),
])
def test_errors_are_one_line_never_a_traceback(workspace, tmp_path, capsys, case, expected):
    model, npz = workspace / "model", workspace / "toy.npz"
    image = tmp_path / "img.png"
    Image.fromarray(toy_images(1, size=16)[0][0]).save(image)
    argv = {
        "model_arg": train_argv(workspace, tmp_path / "m", "--model-arg", "bogus=1"),
        "at_arg": ["evaluate", f"{model}@bogus=1", "--data", npz],
        "evaluate_batch_0": ["evaluate", model, "--data", npz, "--batch-size", 0],
        "train_batch_0": train_argv(workspace, tmp_path / "m", "--batch-size", 0),
        "max_examples_0": ["benchmark", model, "--data", npz, "--max-examples", 0],
        "bomb": ["predict", tmp_path / "bomb.png", "--model", model],
        "predict_folder": ["predict", tmp_path, "--model", model],
        "data_file": ["evaluate", model, "--data", image],
        "explain_map": ["explain", model, image, "--attention-map", "bogus", "--out", tmp_path / "ex"],
        "benchmark_map": ["benchmark", model, "--data", npz, "--attention-map", "bogus"],
        "explain_target": ["explain", model, image, "--target", "kitten", "--methods", "gradcam", "--out",
                           tmp_path / "ex"],
    }.get(case)
    if argv is None:  # a damaged saved model
        argv = ["evaluate", damaged(workspace, tmp_path, case), "--data", npz]
    if case == "bomb":
        Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png")
    code, err = run_cli(capsys, *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and (lines[-1].startswith(f"zoo {argv[0]}: error: ")), err
    import re

    assert re.search(expected, lines[-1]), lines[-1]


def test_explain_refuses_an_empty_batch(workspace):
    model = zoo.load(str(workspace / "model"))
    with pytest.raises(errors.InvalidInput, match="empty"):
        zoo.explain.explain(model, np.zeros((0, 16, 16, 3), "uint8"), methods=("gradcam",))


def test_a_missing_weights_file_is_named(workspace, tmp_path):
    target = damaged(workspace, tmp_path, "truncated")
    (target / "model.weights.h5").unlink()
    with pytest.raises(errors.DamagedFile, match="model.weights.h5 is missing"):
        zoo.load(str(target))


def test_every_help_shows_every_default_once():
    """Before: --epochs, --lr, --momentum, evaluate's --batch-size and others showed no default;
    --split printed it twice."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict)).choices
    for name, sub in subparsers.items():
        text = " ".join(sub.format_help().split())
        options = [a for a in sub._actions if a.option_strings and a.option_strings[0] != "-h"]
        for action in options:
            assert action.help, f"zoo {name} {action.option_strings[0]} has no help (so no default shown)"
            assert "default" not in action.help, f"zoo {name} {action.option_strings[0]} states its default twice"
        optional_positionals = [a for a in sub._actions if not a.option_strings and a.nargs in ("?", "*")]
        assert text.count("(default: ") == len(options) + len(optional_positionals), name
    train_help = " ".join(subparsers["train"].format_help().split())
    for shown in ("--epochs EPOCHS epochs to train (default: 30)", "(default: 0.1)", "(default: 0.9)"):
        assert shown in train_help
    assert "(default: 500)" in " ".join(subparsers["evaluate"].format_help().split())


# -- 4. log noise ----------------------------------------------------------------------------
def test_no_tensorflow_start_up_lines_unless_verbose():
    """Before: every command, even --help and with TF_CPP_MIN_LOG_LEVEL=3, printed oneDNN / absl lines."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    control = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env,
                             timeout=120)
    quiet = subprocess.run([sys.executable, "-m", "zoo.cli", "--help"], capture_output=True, text=True, env=env,
                           cwd=REPO, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = subprocess.run([sys.executable, "-m", "zoo.cli", "--verbose", "list", "abn_resnet20"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert loud.stdout.split() == ["abn_resnet20"]
    for line in control.stderr.splitlines():  # what TensorFlow prints on this machine, --verbose shows
        if "oneDNN" in line or "absl" in line:
            assert line.split("]")[-1].strip()[:40] in loud.stderr


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="TensorFlow's oneDNN switch is x86's")
def test_onednn_kernels_on_unless_the_user_turned_them_off():
    """Before: on x86 CPUs without AVX512 TensorFlow ran Eigen kernels, 1.6x slower to train (README)."""
    probe = ("import os, zoo; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], "
             "'oneDNN custom operations are on' in zoo.startup.held_back())")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ATTENTION_ZOO_TF_LOGS")}
    for setting, expected in ((None, "1 True"), ("0", "0 False")):  # the zoo turns it on; the user's 0 wins
        run_env = dict(env, **({} if setting is None else {"TF_ENABLE_ONEDNN_OPTS": setting}))
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=run_env,
                              cwd=REPO, timeout=120)
        assert done.stdout.split() == expected.split(), (setting, done.stdout, done.stderr[-2000:])


def test_a_late_failure_keeps_the_benchmark_rows_already_measured(workspace, tmp_path, capsys, monkeypatch):
    """Before: zoo benchmark died after three rows and left neither its JSON nor its figure."""
    from zoo.explain import benchmark

    rng = np.random.default_rng(0)
    boxes = np.array([[2, 2, 10, 10]] * 4)
    np.savez(tmp_path / "gt.npz", x_test=rng.integers(0, 256, (4, 16, 16, 3)).astype("uint8"),
             y_test=np.arange(4) % 2, boxes_test=boxes, masks_test=np.ones((4, 16, 16), bool))
    real = benchmark.method_maps

    def dies_on_the_third(model, method, *args, **kwargs):
        if method == "centre":
            raise RuntimeError("killed")  # stands for a crash after the rows before it were written
        return real(model, method, *args, **kwargs)

    monkeypatch.setattr(benchmark, "method_maps", dies_on_the_third)
    argv = ["benchmark", workspace / "model", "--data", tmp_path / "gt.npz", "--methods", "gradcam", "random",
            "centre", "--json", tmp_path / "rows.json", "--quiet"]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "killed" in err and not (tmp_path / "rows.json").exists()
    kept = [json.loads(line) for line in (tmp_path / "rows.json.partial.jsonl").read_text().splitlines()]
    assert [row["method"] for row in kept] == ["gradcam", "random"] and "rows.json.partial.jsonl" in err
    monkeypatch.setattr(benchmark, "method_maps", real)
    code, err = run_cli(capsys, *argv)
    assert code == 0 and not (tmp_path / "rows.json.partial.jsonl").exists()
    assert [r["method"] for r in json.loads((tmp_path / "rows.json").read_text())] == ["gradcam", "random", "centre"]


def test_overlay_names_cost_grows_linearly_with_the_inputs(monkeypatch):
    """Before: every input re-derived every other input's name at each level of detail, so
    `zoo predict` on 1,000 files spent 19 s naming overlays (n^2 name keys), 10,000 half an hour."""
    from zoo import files

    calls = []
    original = files.name_key
    monkeypatch.setattr(files, "name_key", lambda path, depth: calls.append(depth) or original(path, depth))
    paths = [f"/photos/img_{i}.jpg" for i in range(300)] + ["/a/cat.png", "/b/cat.png"]
    names = files.overlay_names(paths)
    assert len(set(names)) == len(paths) and names[-2:] == ["a_cat.attention.png", "b_cat.attention.png"]
    assert len(calls) < 10 * len(paths), len(calls)  # a handful per input, not one per pair
