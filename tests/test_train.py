"""The custom training loop: learning, schedules, precision, checkpoints, resume, tf.distribute."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, TINY, write_toy_npz
from zoo.training.loop import TrainConfig, Trainer, learning_rate_schedule

BUILD = {"input_shape": (16, 16, 3), **TINY}


def make_trainer(source, **overrides):
    config = TrainConfig(**{"epochs": 2, "batch_size": 16, "lr": 0.05, "progress": False, "seed": 1,
                            "deterministic": True, **overrides})
    return Trainer("abn_resnet20", source, config, build_kwargs=BUILD)


def weights_of(model):
    return [np.asarray(v) for v in model.weights]


def test_loop_learns_the_toy_problem(toy_source):
    trainer = make_trainer(toy_source, epochs=6, lr=0.1)
    history = trainer.fit()
    assert len(history) == 6 and history[-1]["step"] == 6 * 4
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["train_accuracy"] >= 0.9
    assert trainer.model.zoo_config["class_names"] == ["red", "blue"]


def test_schedules():
    cosine = learning_rate_schedule(TrainConfig(epochs=10, lr=0.1, schedule="cosine"), steps_per_epoch=10)
    assert float(cosine(0)) == pytest.approx(0.1)
    assert float(cosine(50)) == pytest.approx(0.05, rel=1e-4)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-7)
    warm = learning_rate_schedule(TrainConfig(epochs=10, lr=0.1, warmup_epochs=1), steps_per_epoch=10)
    assert float(warm(5)) == pytest.approx(0.05) and float(warm(10)) == pytest.approx(0.1)
    step = learning_rate_schedule(TrainConfig(epochs=10, lr=0.1, schedule="step", milestones=(5, 8)), 10)
    assert [float(step(s)) for s in (0, 49, 51, 81)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_bfloat16_mixed_precision_keeps_float32_variables_and_outputs(toy_source):
    trainer = make_trainer(toy_source, mixed_precision="bfloat16", max_steps=2)
    history = trainer.fit()
    assert np.isfinite(history[-1]["train_loss"])
    assert trainer.model.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)
    out = trainer.model(np.zeros((1, 16, 16, 3), "float32"))
    assert {str(v.dtype) for v in out.values()} == {"<dtype: 'float32'>"} or all(
        keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())
    assert keras.config.dtype_policy().name == "float32"  # global policy restored


def test_auto_precision_is_bfloat16_only_where_the_hardware_has_it(tmp_path):
    import warnings

    from zoo.training.recipe import cpu_flags, resolve_precision

    assert resolve_precision("auto", flags={"avx2", "avx512f"}, gpu=False) is None
    assert resolve_precision("auto", flags={"avx512_bf16"}, gpu=False) == "bfloat16"
    assert resolve_precision("auto", flags={"amx_bf16"}, gpu=False) == "bfloat16"
    assert resolve_precision("auto", flags=set(), gpu=True) == "bfloat16"
    assert resolve_precision("float32") is None and resolve_precision(None) is None
    assert resolve_precision("float16", flags=set(), gpu=False) == "float16"
    with pytest.warns(UserWarning, match="emulated"):
        assert resolve_precision("bfloat16", flags={"avx2"}, gpu=False) == "bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bfloat16", flags={"avx512_bf16"}, gpu=False) == "bfloat16"
    with pytest.raises(ValueError, match="one of"):
        resolve_precision("bf16")
    (tmp_path / "cpuinfo").write_text("processor : 0\nflags : fpu avx2 amx_bf16\n")
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx2", "amx_bf16"} and cpu_flags(tmp_path / "none") == set()


def test_the_run_records_the_precision_auto_resolved_to(toy_source):
    from zoo.training.recipe import resolve_precision

    trainer = make_trainer(toy_source, mixed_precision="auto", max_steps=1)
    expected = resolve_precision("auto")
    assert trainer.config.mixed_precision == expected
    assert trainer.model.get_layer("stem_conv").compute_dtype == (expected or "float32")


def test_weight_decay_is_l2_added_to_gradients(toy_source):
    """With lr 0 nothing moves; with only decay (zero data gradient impossible) the update differs."""
    a = make_trainer(toy_source, max_steps=1, weight_decay=0.0, momentum=0.0)
    a.fit()
    b = make_trainer(toy_source, max_steps=1, weight_decay=0.5, momentum=0.0)
    b.fit()
    start = make_trainer(toy_source, max_steps=0)
    w0 = {v.path: np.asarray(v) for v in start.model.trainable_variables}
    wa = {v.path: np.asarray(v) for v in a.model.trainable_variables}
    wb = {v.path: np.asarray(v) for v in b.model.trainable_variables}
    name = next(p for p in w0 if p.endswith("fc/kernel"))
    # SGD without momentum: w_b - w_a = -lr * wd * w0
    np.testing.assert_allclose(wb[name] - wa[name], -0.05 * 0.5 * w0[name], atol=1e-6)


def test_checkpoints_tensorboard_and_in_process_resume_parity(toy_source, tmp_path):
    straight = make_trainer(toy_source)
    straight.fit()

    ckpt, logs = tmp_path / "ckpt", tmp_path / "logs"
    first = make_trainer(toy_source, checkpoint_dir=str(ckpt), checkpoint_every=2, log_dir=str(logs), log_every=1,
                         max_steps=5)
    first.fit()  # stops mid-epoch 2 (4 steps per epoch)
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-5")
    with pytest.raises(FileExistsError, match="resume"):
        make_trainer(toy_source, checkpoint_dir=str(ckpt)).fit()
    resumed = make_trainer(toy_source, checkpoint_dir=str(ckpt))
    history = resumed.fit(resume=True)
    assert [(r["epoch"], r["first_step"], r["step"]) for r in history] == [(1, 0, 4), (2, 4, 5), (2, 5, 8)]
    for a, b in zip(weights_of(straight.model), weights_of(resumed.model)):
        np.testing.assert_array_equal(a, b)
    events = list(logs.glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value}
    assert {"train/loss", "train/lr", "epoch/train_loss"} <= tags


def cli(*args):
    return [sys.executable, "-m", "zoo.cli", *args]


def train_cmd(data, ckpt, out, *extra):
    return cli("train", "abn_resnet20", "--data", str(data), "--image-size", "16", "16", "--model-arg", "depth=8",
               "--model-arg", "width=8", "--epochs", "3", "--batch-size", "8", "--lr", "0.05", "--seed", "4",
               "--checkpoint-dir", str(ckpt), "--checkpoint-every", "2", "--output", str(out), "--deterministic",
               "--no-progress", "--test-split", "", *extra)


def test_kill_minus_9_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    data = write_toy_npz(tmp_path / "toy.npz", n_train=64)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(train_cmd(data, tmp_path / "ck_a", tmp_path / "a"), check=True, env=env, capture_output=True)

    ckpt = tmp_path / "ck_b"
    proc = subprocess.Popen(train_cmd(data, ckpt, tmp_path / "b"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        steps = [int(p.name.split("-")[1].split(".")[0]) for p in ckpt.glob("ckpt-*.index")] if ckpt.exists() else []
        if steps and max(steps) >= 10:  # epoch 2 of 3 (8 steps per epoch)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "b").exists()
    subprocess.run(train_cmd(data, ckpt, tmp_path / "b", "--resume"), check=True, env=env, capture_output=True)

    import h5py

    def flat(path):
        arrays = {}
        with h5py.File(path / "model.weights.h5") as f:
            f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return arrays

    a, b = flat(tmp_path / "a"), flat(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 50
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def run_helper(mode, env=None):
    result = subprocess.run([sys.executable, "-m", "tests.helpers.distributed", mode], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def xla_compiled_functions(trainer, iterator):
    graph = trainer._train_step.get_concrete_function(iterator).graph
    return [f.signature.name for f in graph.as_graph_def().library.function if "_XlaMustCompile" in f.attr]


def test_xla_train_step_is_compiled_and_matches_the_graph_step(toy_source):
    runs = {}
    for jit in (False, True):
        trainer = make_trainer(toy_source, jit_compile=jit, deterministic=False)
        iterator = trainer._distributed_epoch(0, 0)
        losses = [float(trainer._train_step(iterator)) for _ in range(3)]
        runs[jit] = losses, weights_of(trainer.model), xla_compiled_functions(trainer, iterator)
    assert runs[False][2] == [] and len(runs[True][2]) == 1  # only the asked-for step is XLA
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    for xla, graph in zip(runs[True][1], runs[False][1]):
        np.testing.assert_allclose(xla, graph, atol=1e-4)  # BN statistics and SGD updates included


def test_xla_compiles_an_objective_that_differentiates_its_own_grad_cam(toy_source):
    """Sharpen Focus takes Grad-CAM inside the step (a nested tape), here differentiated (second order)."""
    losses, compiled = [], []
    for jit in (False, True):
        config = TrainConfig(epochs=1, batch_size=16, progress=False, seed=1, jit_compile=jit,
                             objective="sharpen_focus", loss_kwargs={"second_order": True})
        trainer = Trainer("abn_resnet20", toy_source, config, build_kwargs=BUILD)
        iterator = trainer._distributed_epoch(0, 0)
        losses.append([float(trainer._train_step(iterator)) for _ in range(2)])
        compiled.append(len(xla_compiled_functions(trainer, iterator)))
    assert compiled == [0, 1]
    np.testing.assert_allclose(losses[1][0], losses[0][0], rtol=1e-6)  # the same weights: the same objective
    np.testing.assert_allclose(losses[1][1], losses[0][1], rtol=1e-3)  # after one update (measured: 9e-5)


def test_xla_with_more_than_one_replica_is_refused_before_any_work(toy_source):
    from types import SimpleNamespace

    from zoo.errors import InvalidInput

    two_replicas = SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(InvalidInput, match="one replica.*drop --jit-compile"):
        Trainer("abn_resnet20", toy_source, TrainConfig(batch_size=16, jit_compile=True), strategy=two_replicas,
                build_kwargs=BUILD)


def test_mirrored_strategy_with_synchronized_bn_matches_one_device():
    result = run_helper("mirrored-parity")
    assert result["replicas"] == 2 and result["all_sync_bn"]
    assert result["variable_types"] == ["MirroredVariable"]
    assert result["max_abs_diff"] < 1e-3  # float summation order only
    assert result["max_abs_diff_unsynced_bn"] > 10 * result["max_abs_diff"]  # why BN must be synchronized


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_two_local_workers():
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.helpers.distributed", "multi-worker"], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "TF_CONFIG": tf_config}))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], rel=1e-6)
    assert np.isfinite(results[0]["loss"])


def test_training_with_mixup_and_cutmix_targets(toy_source):
    from zoo.data import AugmentConfig

    mixed = make_trainer(toy_source, max_steps=2, augment=AugmentConfig(mixup_alpha=0.4, cutmix=True))
    seen = []
    step_losses = mixed.core.losses

    def recording(labels, outputs, step, training=True):  # what the loss was given (traced once: symbolic shapes)
        seen.append(labels)
        return step_losses(labels, outputs, step, training)

    mixed.core.losses = recording
    mixed._train_step = mixed._make_train_step()
    record = mixed.fit()[-1]
    plain = make_trainer(toy_source, max_steps=2).fit()[-1]
    assert np.isfinite(record["train_loss"]) and record["train_loss"] != pytest.approx(plain["train_loss"])
    assert seen and seen[0].shape[-1] == 2 and len(seen[0].shape) == 2  # soft (mixed) targets, not class indices
