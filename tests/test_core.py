"""The training core and its two engines: one step of each gives the same update; decay, step
limits, loss schedules, unsupported options and folders behave the same in both."""

import importlib.util
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image

import zoo
from tests.conftest import REPO, TINY, toy_images
from tests.helpers.other_backend import backend_env
from zoo import registry
from zoo.data import ArraySource, AugmentConfig, FolderSource
from zoo.models.losses import logits_loss
from zoo.training import fit as zfit
from zoo.training import setup
from zoo.training.core import LossSchedule, TrainingCore
from zoo.training.loop import Trainer
from zoo.training.recipe import TrainConfig

BUILD = {"input_shape": (16, 16, 3), **TINY}


def config_for(**overrides):
    return TrainConfig(**{"epochs": 1, "batch_size": 16, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                          "progress": False, "seed": 3, **overrides})


def factory(path):
    def make():
        model = zoo.build("abn_resnet20", num_classes=2, **BUILD)
        model.load_weights(str(path))
        return model
    return make


def test_one_step_of_each_engine_gives_the_same_loss_and_weights(toy_source, tmp_path):
    start = zoo.build("abn_resnet20", num_classes=2, **BUILD)
    start.save_weights(str(tmp_path / "start.weights.h5"))
    config = config_for(max_steps=1)
    loop = Trainer(factory(tmp_path / "start.weights.h5"), toy_source, config)
    loop_history = loop.fit()
    fit_model, fit_history = zfit.fit(factory(tmp_path / "start.weights.h5"), toy_source, config)
    assert int(loop.optimizer.iterations.numpy()) == 1
    assert loop_history[-1]["train_loss"] == pytest.approx(fit_history["loss"][-1], rel=1e-5)
    assert loop_history[-1]["train_logits_loss"] == pytest.approx(fit_history["logits_loss"][-1], rel=1e-5)
    moved = 0
    for a, b, s in zip(loop.model.weights, fit_model.weights, start.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6, err_msg=a.path)  # float32 op order
        moved += not np.allclose(np.asarray(a), np.asarray(s))
    assert moved > 20  # the step really changed the weights (BN statistics included)


@pytest.mark.parametrize("precision", [None, "float16"])
def test_weight_decay_is_the_same_with_float16_loss_scaling(toy_source, precision):
    """Before: under float16 the loop added decay to the *scaled* gradients, so it was divided by
    the loss scale (~1/32768 of its value)."""
    def fc_after_one_step(weight_decay):
        config = config_for(max_steps=1, momentum=0.0, weight_decay=weight_decay, mixed_precision=precision, seed=1,
                            augment=AugmentConfig(crop_padding=0, flip=False))
        trainer = Trainer("abn_resnet20", toy_source, config, build_kwargs=BUILD)
        before = np.asarray(trainer.model.get_layer("fc").kernel).copy()
        trainer.fit()
        return before, np.asarray(trainer.model.get_layer("fc").kernel)

    w0, without = fc_after_one_step(0.0)
    _, with_decay = fc_after_one_step(0.5)
    # SGD without momentum: the decay adds -lr * wd * w0 to the update
    np.testing.assert_allclose(with_decay - without, -0.1 * 0.5 * w0, atol=2e-4 if precision else 1e-6)


def test_fit_stops_at_max_steps_inside_an_epoch(toy_source, monkeypatch):
    """Before: max_steps=6 ran 8 steps (whole epochs)."""
    trainer_steps = {}

    class Count(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            trainer_steps["n"] = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    config = config_for(epochs=5, max_steps=6)
    monkeypatch.setattr(zfit.StopAtStep, "on_train_end", Count.on_train_end, raising=False)  # undone after the test
    zfit.fit("abn_resnet20", toy_source, config, build_kwargs=BUILD)
    assert trainer_steps["n"] == 6


def test_options_an_engine_cannot_honour_are_errors(tmp_path):
    with pytest.raises(ValueError, match="deterministic"):
        setup.check_engine_options("fit", config_for(deterministic=True))
    with pytest.raises(ValueError, match="strategy mirrored"):
        setup.check_engine_options("fit", config_for(), "mirrored")
    setup.check_engine_options("loop", config_for(deterministic=True), "mirrored")  # the loop supports both
    from tests.conftest import write_toy_npz
    from zoo.cli import main

    data = write_toy_npz(tmp_path / "toy.npz")
    assert main(["train", "abn_resnet20", "--data", str(data), "--engine", "fit", "--strategy", "mirrored",
                 "--output", str(tmp_path / "m")]) == 2


def test_the_fit_engine_reads_image_folders(tmp_path):
    """Before: AttributeError (fit read .images of the source)."""
    images, labels = toy_images(32, size=16)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "data" / ["red", "blue"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    source = FolderSource(tmp_path / "data", image_size=(16, 16))
    model, history = zfit.fit("abn_resnet20", source, config_for(max_steps=2), build_kwargs=BUILD)
    assert model.zoo_config["class_names"] == ["blue", "red"] and np.isfinite(history["loss"][-1])


@pytest.fixture
def ramped_family():
    """A test-only family whose loss weight ramps 0 -> 1 over 2 epochs (as loss-based attention's
    patch loss does over 80), on a model whose logits are always 0 (loss = w * log 2)."""
    def builder(num_classes=2, input_shape=(16, 16, 3), name=None):
        inputs = keras.Input(input_shape)
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        logits = keras.layers.Dense(num_classes, kernel_initializer="zeros", name="fc")(x)
        return keras.Model(inputs, {"logits": logits}, name=name)

    def loss(y_true, outputs, task, ramp=1.0, label_smoothing=0.0):
        return ramp * logits_loss(y_true, outputs, task, label_smoothing)

    def info(config):
        return registry.FeatureInfo("fc", None, (), ("fc",), ())

    registry.register_model("test_ramp", "test", builder, loss, info,
                            loss_schedules={"ramp": LossSchedule(0.0, 1.0, 2)}, num_classes=2, input_shape=(16, 16, 3))
    yield "test_ramp"
    registry.unregister_model("test_ramp")


def test_a_loss_weight_scheduled_over_epochs_in_both_engines(ramped_family, toy_source):
    model = zoo.build(ramped_family)
    core = TrainingCore(model, config_for(), steps_per_epoch=4)
    assert [float(core.loss_arguments(s)["ramp"]) for s in (0, 2, 4, 8, 12)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    config = config_for(epochs=2, lr=0.0, weight_decay=0.0)  # nothing learns: loss = ramp(step) * log 2
    want = [np.mean([s / 8 for s in range(4)]) * np.log(2), np.mean([s / 8 for s in range(4, 8)]) * np.log(2)]
    loop_history = Trainer(ramped_family, toy_source, config).fit()
    assert [r["train_loss"] for r in loop_history] == pytest.approx(want, rel=1e-5)
    _, fit_history = zfit.fit(ramped_family, toy_source, config)
    assert fit_history["loss"] == pytest.approx(want, rel=1e-5)
    assert fit_history["logits_loss"] == pytest.approx([np.log(2)] * 2, rel=1e-5)  # the unweighted task loss


def test_resume_refuses_a_changed_recipe(toy_source, tmp_path):
    ckpt = str(tmp_path / "ck")
    Trainer("abn_resnet20", toy_source, config_for(max_steps=1, checkpoint_dir=ckpt), build_kwargs=BUILD).fit()
    changed = Trainer("abn_resnet20", toy_source, config_for(batch_size=8, checkpoint_dir=ckpt), build_kwargs=BUILD)
    with pytest.raises(ValueError, match="batch_size: 16 -> 8"):
        changed.fit(resume=True)


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(toy_source, tmp_path, capsys):
    ckpt = tmp_path / "ck"
    first = Trainer("abn_resnet20", toy_source, config_for(max_steps=3, checkpoint_dir=str(ckpt), checkpoint_every=1),
                    build_kwargs=BUILD)
    first.fit()
    newest = sorted(ckpt.glob("ckpt-*.data-*"))[-1]
    newest.write_bytes(b"garbage")
    (ckpt / "ckpt-9_temp").mkdir()  # what a killed write leaves behind
    resumed = Trainer("abn_resnet20", toy_source, config_for(max_steps=4, checkpoint_dir=str(ckpt)),
                      build_kwargs=BUILD)
    assert not (ckpt / "ckpt-9_temp").exists()
    assert resumed.restore() == 2
    assert "unreadable" in capsys.readouterr().err


def test_labels_out_of_range_and_single_class_data_are_clear_errors():
    images, labels = toy_images(16, size=16)
    model = zoo.build("abn_resnet20", num_classes=2, **BUILD)
    with pytest.raises(ValueError, match="labels from 0 to 5"):
        setup.check_data(model, ArraySource(images, np.where(labels == 1, 5, 0), ["a", "b"]))
    one_class = ArraySource(images, np.zeros(16, int), ["only", "other"])
    with pytest.raises(ValueError, match="single class"):
        setup.check_data(model, one_class)
    with pytest.raises(ValueError, match="at least 2 classes"):
        zoo.build("abn_resnet20", num_classes=1, **BUILD)


@pytest.mark.parametrize("engine", ["loop", "fit"])
def test_a_loss_built_from_the_feature_gradient_trains_in_both_engines(engine):
    """Hook for Sharpen Focus: d(class score)/d(inner features) inside the train step, differentiated
    again by the step (second order). For logits = W^T mean_hw(A) the penalty sum (dS_y/dA)^2 has
    a closed-form update of W."""
    from tests.helpers.gradient_family import one_step

    w0, w1, expected = one_step(engine)
    assert np.max(np.abs(w1 - w0)) > 1e-4  # the penalty's own gradient moved W
    np.testing.assert_allclose(w1, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_the_feature_gradient_hook_under_jax():
    env = backend_env("jax")
    result = subprocess.run([sys.executable, "-m", "tests.helpers.gradient_family"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and out["moved"] > 1e-4 and out["max_error"] < 1e-5
    assert np.all(np.isfinite(out["abn_losses"]))  # Grad-CAM through BatchNorm, in JAX's stateless step


def test_grad_cam_in_training_through_batch_norm_of_an_abn():
    """The real use: Grad-CAM of ABN's last stage (BatchNorm inside the head) in a loop step: the
    penalty on the Grad-CAM gradient is in the loss and its own gradient moves the trunk."""
    abn = zoo.get_spec("abn_resnet20")
    scale = 1e4  # the penalty is small on a fresh tiny net: scaled so that its update is visible

    def penalised(y, out, task, **kw):
        return scale * ops.mean(ops.square(out["gradients/tap/true"]), axis=(1, 2, 3)) + abn.loss(y, out, task, **kw)

    defaults = {"depth": 8, "num_classes": 2, "input_shape": (16, 16, 3), "width": 4}
    registry.register_model("test_abn_gradcam", "test", abn.builder, penalised, abn.feature_info,
                            gradients=registry.GradientRequest((("tap", "gradcam"),), second_order=True), **defaults)
    registry.register_model("test_abn_plain", "test", abn.builder, abn.loss, abn.feature_info, **defaults)
    try:
        images, labels = toy_images(32, size=16)
        runs = {}
        for name in ("test_abn_gradcam", "test_abn_plain"):
            trainer = Trainer(name, ArraySource(images, labels), config_for(max_steps=2))
            history = trainer.fit()
            runs[name] = (history[-1], trainer.model.get_layer("stem_conv").get_weights()[0])
        (penalised_record, penalised_stem), (plain_record, plain_stem) = runs.values()
        assert np.isfinite(penalised_record["train_loss"]) and np.isfinite(penalised_stem).all()
        assert penalised_record["train_loss"] > plain_record["train_loss"]  # the penalty is part of the loss
        assert np.abs(penalised_stem - plain_stem).max() > 1e-4  # and its gradient reached the trunk
    finally:
        registry.unregister_model("test_abn_gradcam")
        registry.unregister_model("test_abn_plain")


def test_an_epoch_of_few_steps_or_many_left_out_images_is_warned_about():
    """Before: 180 images with the default batch 128 ran 1 step per epoch and left 52 images out
    without a word (fine-tuning ended at chance)."""
    with pytest.warns(UserWarning, match=r"1 step\(s\) per epoch, 52 images \(29%\) left out.*--batch-size 16"):
        assert setup.steps_per_epoch(180, 128) == 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert setup.steps_per_epoch(50_000, 128) == 390  # 80 of 50,000 left out, 390 steps: no warning
