"""The backend-agnostic model.fit path (zoo.fit), here on TensorFlow and in a JAX process."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, TINY, toy_images
from tests.helpers.other_backend import backend_env
from zoo.data import ArraySource
from zoo.training import fit as zfit
from zoo.training.recipe import TrainConfig


def test_array_batches_shuffle_augment_and_keep_evaluation_order():
    images, labels = toy_images(40, size=8)
    batches = zfit.ArrayBatches(ArraySource(images, labels), 16, training=True, seed=3)
    assert len(batches) == 2
    x, y = batches[0]
    assert x.shape == (16, 8, 8, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, zfit.ArrayBatches(ArraySource(images, labels), 16, training=True, seed=3)[0][0])
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][1], y)  # reshuffled
    evaluation = zfit.ArrayBatches(ArraySource(images, labels), 16)
    assert len(evaluation) == 3 and np.array_equal(evaluation[2][1], labels[32:])


def test_fit_learns_and_resumes(tmp_path):
    images, labels = toy_images(64)
    config = TrainConfig(epochs=4, batch_size=16, lr=0.1, progress=False, checkpoint_dir=str(tmp_path / "ck"),
                         checkpoint_every=2, max_steps=8)  # stopped after 2 of 4 epochs, as if interrupted
    build = {"input_shape": (16, 16, 3), **TINY}
    _, first = zfit.fit("abn_resnet20", (images, labels), config, test_data=(images, labels), build_kwargs=build)
    assert len(first["loss"]) == 2
    config.max_steps = None
    model, history = zfit.fit("abn_resnet20", (images, labels), config, test_data=(images, labels),
                              build_kwargs=build, output_dir=tmp_path / "out", resume=True)
    assert len(history["loss"]) == 2  # only epochs 3 and 4 ran: it resumed, not restarted
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["step"] == 16  # 4 epochs x 4 steps in all
    assert first["loss"][0] > history["loss"][-1] and history["accuracy"][-1] >= 0.9
    assert "val_accuracy" in history and (tmp_path / "out" / "model.weights.h5").exists()
    log = (tmp_path / "ck" / "log.csv").read_text()
    assert log.count("\n") == 5 and "epoch_seconds" in log.splitlines()[0]  # header + 4 epochs across both runs
    assert [int(line.split(",")[0]) for line in log.splitlines()[1:]] == [0, 1, 2, 3]
    assert len(history["epoch_seconds"]) == 2 and min(history["epoch_seconds"]) > 0
    with pytest.raises(FileExistsError, match="resume"):
        zfit.fit("abn_resnet20", (images, labels), config, build_kwargs={"input_shape": (16, 16, 3), **TINY})


@pytest.mark.parametrize("choice, expected", [(None, "auto"), (True, True), (False, False)])
def test_fit_compiles_with_the_configs_xla_choice(monkeypatch, choice, expected):
    asked = []
    compile_ = zfit.FitModel.compile
    monkeypatch.setattr(zfit.FitModel, "compile", lambda self, **kw: asked.append(kw["jit_compile"]) or
                        compile_(self, **kw))
    images, labels = toy_images(32)
    config = TrainConfig(epochs=1, batch_size=16, progress=False, max_steps=1, jit_compile=choice)
    _, history = zfit.fit("abn_resnet20", (images, labels), config, build_kwargs={"input_shape": (16, 16, 3), **TINY})
    assert asked == [expected] and np.isfinite(history["loss"][0])


def test_a_resumed_fit_shuffles_and_augments_as_the_epoch_it_resumes():
    images, labels = toy_images(32)
    resumed = zfit.ArrayBatches(ArraySource(images, labels), 8, training=True, seed=3)
    zfit.DataEpoch(resumed).on_epoch_begin(5)
    epoch5 = zfit.ArrayBatches(ArraySource(images, labels), 8, training=True, seed=3, first_epoch=5)
    epoch0 = zfit.ArrayBatches(ArraySource(images, labels), 8, training=True, seed=3)
    assert np.array_equal(resumed[1][0], epoch5[1][0]) and np.array_equal(resumed[1][1], epoch5[1][1])
    assert not np.array_equal(resumed[1][0], epoch0[1][0])


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_fit_trains_under_jax_without_tensorflow(tmp_path):
    code = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from tests.helpers.other_backend import BlockTensorFlow
sys.meta_path.insert(0, BlockTensorFlow())
import keras, numpy as np
from tests.conftest import TINY, toy_images
from zoo.training import fit
from zoo.training.recipe import TrainConfig
images, labels = toy_images(64)
config = TrainConfig(epochs=3, batch_size=16, lr=0.1, progress=False, mixed_precision="bfloat16")
model, history = fit.fit("abn_resnet20", (images, labels), config,
                         build_kwargs={{"input_shape": (16, 16, 3), **TINY}}, output_dir={str(tmp_path / "out")!r})
print(json.dumps({{"backend": keras.backend.backend(), "loss": history["loss"]}}))
"""
    env = backend_env("jax")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and out["loss"][-1] < out["loss"][0]
    assert (tmp_path / "out" / "config.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_zoo_train_command_under_jax_picks_the_fit_engine(tmp_path):
    from tests.conftest import write_toy_npz

    data = write_toy_npz(tmp_path / "toy.npz")
    code = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.helpers.other_backend import BlockTensorFlow
sys.meta_path.insert(0, BlockTensorFlow())
from zoo.cli import main
sys.exit(main(["train", "abn_resnet20", "--data", {str(data)!r}, "--image-size", "16", "16", "--model-arg", "depth=8",
               "--model-arg", "width=4", "--epochs", "1", "--batch-size", "16", "--output", {str(tmp_path / "m")!r},
               "--no-progress"]))
"""
    env = backend_env("jax")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_accuracy" in result.stdout and (tmp_path / "m" / "model.weights.h5").exists()


def test_the_jit_compile_flag_reaches_the_train_config():
    from zoo.cli import build_parser, train_config_from_args

    def jit_of(*flag):
        args = build_parser().parse_args(["train", "abn_resnet20", "--data", "d.npz", "--output", "o", *flag])
        return train_config_from_args(args).jit_compile

    assert [jit_of(), jit_of("--jit-compile", "on"), jit_of("--jit-compile", "off")] == [None, True, False]
