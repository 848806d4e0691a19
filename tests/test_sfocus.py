"""Sharpen Focus (issue 17, first part): the shared Grad-CAM, the confusing class and the two
losses against hand-computed values, per example."""

import numpy as np
import pytest
from keras import ops

from zoo import gradcam
from zoo.models import sfocus


def square(size=8, box=(2, 2, 5, 5), value=1.0):
    """A map (size, size) that is `value` inside the box ``(y0, x0, y1, x1)`` and 0 elsewhere."""
    y0, x0, y1, x1 = box
    m = np.zeros((size, size), "float32")
    m[y0:y1, x0:x1] = value
    return m


def batch(*maps):
    return ops.convert_to_tensor(np.stack(maps).astype("float32"))


def value(tensor):
    return np.asarray(ops.convert_to_numpy(tensor))


def test_positive_gradient_weights_are_the_ports_variant():
    features = np.ones((1, 2, 2, 2), "float32")
    gradient = np.array([[[[1.0, -3.0], [1.0, -3.0]], [[-1.0, 1.0], [-1.0, 1.0]]]], "float32")  # mean 0, -1
    assert value(gradcam.gradcam_from(features, gradient)).max() == 0.0  # ReLU(0 - 1*2) = 0
    # GAP(ReLU(g)): channel 0 (1+1+0+0)/4 = 0.5, channel 1 (0+0+1+1)/4 = 0.5 -> 0.5 + 0.5 = 1 everywhere
    np.testing.assert_allclose(value(gradcam.gradcam_from(features, gradient, positive_gradients=True)), 1.0)


def test_confusing_class_is_the_top1_when_wrong_else_the_top2_and_ties_go_low():
    logits = batch(np.array([0.1, 3.0, 2.0, 0.0]), np.array([0.1, 3.0, 2.0, 0.0]), np.zeros(4))
    labels = ops.convert_to_tensor(np.array([0, 1, 0]), "int32")
    # wrong (top-1 is 1): 1; right (true 1): the top-2, 2; all tied, true 0: the lowest other index, 1
    np.testing.assert_array_equal(value(gradcam.confusing_class(logits, labels)), [1, 2, 1])


def test_class_score_sums_each_examples_class_logit():
    logits = batch(np.array([1.0, 2.0]), np.array([3.0, 5.0]))
    assert float(value(gradcam.class_score(logits, ops.convert_to_tensor([1, 0])))) == 5.0
    assert float(value(gradcam.class_score(logits, batch(np.array([0.5, 0.5]), np.array([0.0, 1.0]))))) == 6.5


def test_separability_of_identical_disjoint_and_partly_overlapping_maps():
    a = square(box=(2, 2, 5, 5))  # 9 cells
    b = square(box=(5, 5, 8, 8))  # disjoint
    c = square(box=(2, 2, 5, 8))  # 9 cells overlap a, 9 more outside a's mask
    got = value(sfocus.separability(batch(a, a, a), batch(a, b, c)))
    # identical: 2 * 9 / 18 = 1; disjoint: 0; a vs c: min = a (9 cells) inside a's mask: 2 * 9 / (9 + 18)
    np.testing.assert_allclose(got, [1.0, 0.0, 2 * 9 / 27], atol=1e-5)


def test_the_mask_is_the_true_maps_own_normalised_region():
    ramp = np.tile(np.linspace(0, 1, 8, dtype="float32"), (8, 1))  # 0 .. 1 across the columns
    mask = value(sfocus.soft_mask(batch(ramp * 7.0)))[0]  # the scale does not matter: A / max A
    assert mask[0, :4].max() < 1e-3 and mask[0, 5:].min() > 0.99  # sigma 0.55: columns 0-3 out, 5-7 in
    np.testing.assert_allclose(mask[0, 4], 1 / (1 + np.exp(-100 * (4 / 7 - 0.55))), rtol=1e-5)


def test_separability_is_per_example_and_scale_free():
    a, c = square(box=(2, 2, 5, 5)), square(box=(2, 2, 5, 8))
    alone = value(sfocus.separability(batch(a), batch(c)))
    mixed = value(sfocus.separability(batch(a, 1000 * a), batch(c, 1000 * c)))  # a batch-wide max would differ
    np.testing.assert_allclose(mixed, [alone[0], alone[0]], rtol=1e-5)


def test_consistency_inside_and_outside_the_last_layers_mask():
    last = square(size=4, box=(0, 0, 2, 2))  # the top-left quarter of a 4x4 map
    inside, outside = square(box=(1, 1, 3, 3)), square(box=(5, 5, 8, 8))  # on the 8x8 inner map
    got = value(sfocus.consistency(batch(inside, outside), batch(last, last)))
    np.testing.assert_allclose(got, [0.8 - 1.0, 0.8 - 0.0], atol=1e-3)
    own = value(sfocus.consistency(batch(outside), batch(last), mask_from="inner"))  # the port's variant
    np.testing.assert_allclose(own, [0.8 - 1.0], atol=1e-3)
    with pytest.raises(ValueError, match="mask_from"):
        sfocus.consistency(batch(inside), batch(last), mask_from="first")


def test_all_zero_maps_give_finite_losses():
    zero = np.zeros((4, 4), "float32")
    assert np.isfinite(value(sfocus.separability(batch(zero), batch(zero)))).all()
    assert np.isfinite(value(sfocus.consistency(batch(zero), batch(zero)))).all()


# -- the objective in training ------------------------------------------------------------------

def tiny_batch(n=16, seed=0):
    from tests.conftest import toy_images

    return toy_images(n, size=16, seed=seed)


def test_both_engines_and_jax_give_the_same_losses_and_one_step_update(tmp_path):
    import importlib.util

    import keras

    from tests.helpers import train_step

    keras.utils.set_random_seed(0)
    start = train_step.build("sfocus")
    start.save_weights(str(tmp_path / "start.weights.h5"))
    images, labels = tiny_batch()
    runs = {engine: train_step.one_step("sfocus", tmp_path / "start.weights.h5", images, labels, engine)
            for engine in ("loop", "fit")}
    (loop_losses, loop_weights), (fit_losses, fit_weights) = runs["loop"], runs["fit"]
    assert {"as_last", "as_inner", "ac", "logits_loss", "loss"} <= set(loop_losses) and loop_losses["as_last"] > 0
    for part in ("loss", "logits_loss", "as_last", "as_inner", "ac"):
        assert loop_losses[part] == pytest.approx(fit_losses[part], rel=1e-5), part
    assert loop_losses["loss"] == pytest.approx(
        loop_losses["logits_loss"] + loop_losses["as_last"] + loop_losses["as_inner"] + loop_losses["ac"], rel=1e-5)
    for a, b in zip(loop_weights, fit_weights):
        np.testing.assert_allclose(a, b, atol=3e-6)
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    np.savez(tmp_path / "batch.npz", images=images, labels=labels)
    jax_losses, jax_weights, backend = train_step.run_other_backend(
        "sfocus", tmp_path / "start.weights.h5", tmp_path / "batch.npz", tmp_path / "jax.npz")
    assert backend == "jax"
    for part in ("loss", "as_last", "as_inner", "ac"):
        assert jax_losses[part] == pytest.approx(fit_losses[part], rel=1e-4, abs=1e-6), part
    # the step's update, to within 2% of its size (Grad-CAM's mask, steep even at omega = 10,
    # amplifies JAX's and TensorFlow's last-digit differences in the features)
    worst = train_step.largest_update_difference(jax_weights, fit_weights, start.weights)
    print(f"largest JAX - TensorFlow difference: {worst:.2%} of the step")
    assert worst <= 0.02


def toy_model(inner=True):
    """conv "inner" -> conv "last" -> GAP -> fc: a 3-class model with declared taps."""
    import keras

    from zoo import registry
    from zoo.models.losses import logits_loss

    name = "test_sfocus_toy" if inner else "test_sfocus_no_inner"
    if name not in registry.list_models():
        def build(num_classes=3, input_shape=(6, 6, 3), name=None):
            x = keras.Input(input_shape)
            a = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", name="inner")(x)
            b = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", name="last")(a)
            logits = keras.layers.Dense(num_classes, name="fc")(keras.layers.GlobalAveragePooling2D()(b))
            return keras.Model(x, {"logits": logits}, name=name)

        info = registry.FeatureInfo("last", "inner" if inner else None, (), ("fc",), ())
        registry.register_model(name, "test", build, logits_loss, lambda config: info, num_classes=3,
                                input_shape=(6, 6, 3))
    import zoo

    keras.utils.set_random_seed(1)
    return zoo.build(name)


def objective_value(core, images, labels):
    return ops.mean(core.losses(labels, core.forward(images, labels), 0)["loss"])


def analytic_and_numeric(second_order, eps=2e-3, count=4):
    """The objective's gradient w.r.t. the inner conv kernel by autodiff, and by central
    differences on its largest entries: second order, of the true objective; first order, with
    the class-score gradients held at the base point's values (what first order differentiates)."""
    import tensorflow as tf

    from zoo.training.core import TrainingCore
    from zoo.training.recipe import TrainConfig

    model = toy_model()
    config = TrainConfig(objective="sharpen_focus", weight_decay=0.0,
                         loss_kwargs={"omega": 5.0, "positive_gradients": False, "second_order": second_order})
    core = TrainingCore(model, config, steps_per_epoch=1)
    images = ops.convert_to_tensor(np.random.default_rng(0).normal(0, 1, (4, 6, 6, 3)).astype("float32"))
    labels = ops.convert_to_tensor(np.array([0, 1, 2, 1]), "int32")
    frozen = {k: v for k, v in core.forward(images, labels).items() if k.startswith("gradients/")}

    def value():
        outputs = core.forward(images, labels)
        return ops.mean(core.losses(labels, outputs if second_order else {**outputs, **frozen}, 0)["loss"])

    kernel = model.get_layer("inner").kernel
    with tf.GradientTape() as tape:
        total = value()
    analytic = tape.gradient(total, kernel).numpy().ravel()
    base = kernel.numpy().copy()
    picked = np.argsort(-np.abs(analytic))[:count]
    numeric = []
    for index in picked:
        shifted = []
        for sign in (1, -1):
            moved = base.ravel().copy()
            moved[index] += sign * eps
            kernel.assign(moved.reshape(base.shape))
            shifted.append(float(value()))
        kernel.assign(base)
        numeric.append((shifted[0] - shifted[1]) / (2 * eps))
    return analytic, picked, np.array(numeric)


def test_the_objectives_gradient_matches_finite_differences_first_and_second_order():
    """Smooth toy features (tanh: both signs, so every term is active), plain Grad-CAM weights:
    central differences converge."""
    first, picked, numeric = analytic_and_numeric(second_order=False)
    np.testing.assert_allclose(first[picked], numeric, rtol=1e-2)
    second, picked, numeric = analytic_and_numeric(second_order=True)
    np.testing.assert_allclose(second[picked], numeric, rtol=1e-2)
    assert np.abs(first - second).max() > 0.05 * np.abs(second).max()  # second order really adds a term


def test_the_objective_separates_two_classes_that_share_a_region():
    """Both classes light up the same square (class 1 a little brighter): cross-entropy alone can
    use the same place for both; the objective's separability term falls as it trains."""
    import zoo
    from zoo.data import ArraySource, AugmentConfig
    from zoo.training.fit import fit
    from zoo.training.recipe import TrainConfig

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 60, (64, 16, 16, 3)).astype("float32")
    labels = np.arange(64) % 2
    images[:, 4:12, 4:12] += np.where(labels == 1, 150.0, 120.0)[:, None, None, None]
    images[labels == 1, 0:4, 0:4] += 80.0  # class 1 also has a corner of its own
    config = TrainConfig(epochs=6, batch_size=16, lr=0.05, weight_decay=0.0, progress=False,
                         augment=AugmentConfig(crop_padding=0, flip=False))
    keras_seed = 0
    import keras

    keras.utils.set_random_seed(keras_seed)
    _, history = fit(lambda: zoo.build("sfocus_resnet20", num_classes=2, input_shape=(16, 16, 3)),
                     ArraySource(images.clip(0, 255).astype("uint8"), labels, ["a", "b"]), config)
    assert history["as_last"][-1] < 0.7 * history["as_last"][0], history["as_last"]


def test_clear_errors_for_models_the_objective_cannot_train():
    from zoo.training.core import TrainingCore
    from zoo.training.recipe import TrainConfig

    config = TrainConfig(objective="sharpen_focus")
    with pytest.raises(ValueError, match="declares no inner layer.*--loss-arg inner_layer=LAYER"):
        TrainingCore(toy_model(inner=False), config, 1)
    named = TrainConfig(objective="sharpen_focus", loss_kwargs={"inner_layer": "inner"})
    assert "features/inner" in TrainingCore(toy_model(inner=False), named, 1).tapped(np.zeros((1, 6, 6, 3)), [0])
    import zoo

    faces = zoo.build("plain_faceresnet20", num_classes=3, input_shape=(32, 32, 3), depth=8, width=4)
    with pytest.raises(ValueError, match="single-label .*multilabel"):
        TrainingCore(faces, config, 1)
    with pytest.raises(ValueError, match="no loss argument 'sigmaa'.*sigma"):
        TrainingCore(toy_model(), TrainConfig(objective="sharpen_focus", loss_kwargs={"sigmaa": 0.5}), 1)
    from zoo.training import setup

    with pytest.raises(ValueError, match="Did you mean: sharpen_focus"):
        setup.check_config(TrainConfig(objective="sharpen_focs"))


def test_zoo_train_takes_the_objective_and_its_arguments_for_any_architecture(tmp_path, capsys):
    import json

    from tests.conftest import write_toy_npz
    from zoo.cli import main

    write_toy_npz(tmp_path / "d.npz", n_train=16, n_test=8)
    common = ["--data", str(tmp_path / "d.npz"), "--image-size", "16", "16", "--epochs", "1", "--batch-size", "8",
              "--no-progress"]
    assert main(["train", "sfocus_resnet20", *common, "--loss-arg", "sigma=0.5", "--output", str(tmp_path / "sf")]) == 0
    epoch = json.loads([line for line in capsys.readouterr().out.splitlines() if line.startswith('{"epoch"')][-1])
    assert {"train_as_last", "train_as_inner", "train_ac", "train_logits_loss"} <= set(epoch)
    saved = json.loads((tmp_path / "sf" / "config.json").read_text())
    assert saved["objective"] == "sharpen_focus" and saved["train_config"]["loss_kwargs"] == {"sigma": 0.5}
    assert main(["train", "sfocus_resnet20", *common, "--objective", "none", "--output", str(tmp_path / "ce")]) == 0
    assert "train_as_last" not in capsys.readouterr().out  # cross-entropy alone
    abn = ["--model-arg", "depth=8", "--model-arg", "width=4", "--objective", "sharpen_focus"]
    assert main(["train", "abn_resnet20", *common, *abn, "--output", str(tmp_path / "abn")]) == 0
    assert '"train_as_inner"' in capsys.readouterr().out  # the objective on another family, its declared taps
    assert main(["train", "sfocus_resnet20", *common, "--loss-arg", "sigmaa=1", "--output", str(tmp_path / "x")]) == 2
    assert "no loss argument 'sigmaa'" in capsys.readouterr().err


def test_width_scales_every_stage_and_keeps_the_declared_taps():
    import zoo
    from zoo import registry
    from zoo.errors import InvalidInput
    from zoo.models import backbones

    model = zoo.build("sfocus_resnet20", width=8, input_shape=(16, 16, 3))
    info = registry.feature_info(model)
    widths = [model.get_layer(f"stage{i}_block3_out").output.shape[-1] for i in (1, 2, 3)]
    assert widths == [8, 16, 32]
    assert backbones.cifar_resnet_layout(18, 32) == ("basic", (2, 2, 2, 2), (32, 64, 128, 256))
    assert backbones.cifar_resnet_layout(18)[2] == (64, 128, 256, 512)
    assert backbones.cifar_resnet_layout(20, (8, 8, 16))[2] == (8, 8, 16)
    assert (info.gradcam_layer, info.inner_layer) == ("stage3_block3_out", "stage2_block3_out")
    with pytest.raises(InvalidInput, match="positive integer"):
        backbones.cifar_resnet_layout(20, 0.5)
    with pytest.raises(InvalidInput, match="3 stages' widths"):
        backbones.cifar_resnet_layout(20, (8, 16))
    with pytest.raises(InvalidInput, match="depth is one of"):
        zoo.build("sfocus_resnet20", depth=34)
