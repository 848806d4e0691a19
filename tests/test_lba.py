"""Loss-based attention (issue 18, first part): the stride-free backbones, both heads, the patch
weights, the loss and its ramp, hand-computed."""

import numpy as np
import pytest
from keras import ops

import zoo
from zoo.errors import InvalidInput
from zoo.models import backbones, lba
from zoo.training.core import LossSchedule

TINY = {"width": 0.0625, "num_classes": 3}


def value(tensor):
    return np.asarray(ops.convert_to_numpy(tensor))


def images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("arch", ["lba_resnet18", "lba_capsule_resnet18", "lba_capsule_vgg11"])
@pytest.mark.parametrize("size", [32, 64])
def test_every_output_has_its_shape_at_both_input_sizes(arch, size):
    model = zoo.build(arch, input_shape=(size, size, 3), **TINY)
    out = model(images(2, size), training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (2, 3), "patch_logits": (2, 6, 6, 3), "patch_weights": (2, 6, 6, 1)}
    np.testing.assert_allclose(value(out["patch_weights"]).sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    assert (value(out["patch_weights"]) >= 0).all()
    trunk = zoo.registry.feature_info(model).inner_layer
    assert model.get_layer(trunk).output.shape[1] == 32  # 64x64: the second stage strides (the code's variant)


def test_full_width_conv_resnet18_has_the_official_parameter_count():
    model = zoo.build("lba_resnet18")
    assert model.count_params() == 32_683_210  # official conv_resnet.py ResNet-18: 32.7M
    assert model.get_layer("patch_conv").count_params() == 81 * 512 * 512  # the 9x9 conv: 21.2M of them
    assert model.get_layer("stem_conv").output.shape[1:] == (32, 32, 64) and "stem_bn" not in {
        layer.name for layer in model.layers}  # no BN or ReLU after the stem, as in the code


def test_patch_weights_threshold_and_renormalise_by_hand():
    # s = ||f||: 5, 1, 0, 4 -> alpha .5 .1 0 .4 -> ReLU(. - .15): .35 0 0 .25 -> .5833 0 0 .4167
    logits = np.array([[[3.0, 4.0], [0.0, 1.0], [0.0, 0.0], [0.0, 4.0]]], "float32")
    np.testing.assert_allclose(value(lba.PatchWeights(0.15)(logits)), [[0.35 / 0.6, 0, 0, 0.25 / 0.6]], atol=1e-6)
    np.testing.assert_allclose(value(lba.PatchWeights(0.0)(logits)), [[0.5, 0.1, 0.0, 0.4]], atol=1e-6)


def test_capsule_weights_drop_the_capsules_of_a_zeroed_position_by_hand():
    # capsule scores 1 3 | 2 4 (sum 10): positions .4 .6 -> ReLU(. - .45) -> 0, .15 -> 0, 1;
    # the capsules of position 1 renormalised: 2/6, 4/6
    logits = np.array([[[[1.0], [3.0]], [[2.0], [-4.0]]]], "float32")  # the sign does not matter: a norm
    capsules, positions = lba.CapsuleWeights(0.45)(logits)
    np.testing.assert_allclose(value(positions), [[0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(value(capsules), [[[0.0, 0.0], [1 / 3, 2 / 3]]], atol=1e-6)


def test_conv_head_image_logits_are_the_weighted_patch_logits():
    model = zoo.build("lba_resnet18", **TINY)
    out = model(images(3), training=False)
    alpha = value(out["patch_weights"])[..., 0]
    expected = np.einsum("bij,bijk->bk", alpha, value(out["patch_logits"]))
    np.testing.assert_allclose(value(out["logits"]), expected, rtol=1e-4, atol=1e-5)


def test_capsule_head_patch_logits_sum_the_slots_including_their_biases():
    model = zoo.build("lba_capsule_resnet18", **TINY)
    out = model(images(1), training=False)
    capsules = zoo.registry.feature_info(model)  # the declared taps exist on the capsule model too
    assert model.get_layer(capsules.gradcam_layer).output.shape[1:3] == (6, 6)
    fc = model.get_layer("fc")
    slots = backbones.channels(64, TINY["width"])
    import keras

    probe = keras.Model(model.input, model.get_layer("capsules").output)
    caps = value(probe(images(1)))  # (1, 36, S, D)
    f = caps @ value(fc.kernel) + value(fc.bias)
    np.testing.assert_allclose(value(out["patch_logits"]).reshape(1, 36, 3), f.sum(axis=2), rtol=1e-4, atol=1e-4)
    assert caps.shape[2] == slots


def test_lba_loss_by_hand_single_and_multi_label():
    logits = np.array([[2.0, 0.0]], "float32")
    patch_logits = np.array([[[[1.0, 0.0], [0.0, 3.0]]]], "float32")  # (1, 1, 2, 2): two patches
    alpha = np.array([[[[0.25], [0.75]]]], "float32")
    outputs = {"logits": logits, "patch_logits": patch_logits, "patch_weights": alpha}

    def ce(z, y):
        return np.log(np.exp(z).sum()) - z[y]

    expected = ce(logits[0], 0) + 0.1 * (0.25 * ce(patch_logits[0, 0, 0], 0) + 0.75 * ce(patch_logits[0, 0, 1], 0))
    loss = lba.lba_loss(np.array([0]), outputs, zoo.tasks.get_task("multiclass"), patch_loss_weight=0.1)
    np.testing.assert_allclose(value(loss), [expected], rtol=1e-5)
    one_hot = lba.lba_loss(np.array([[1.0, 0.0]], "float32"), outputs, zoo.tasks.get_task("multiclass"),
                           patch_loss_weight=0.1)
    np.testing.assert_allclose(value(one_hot), [expected], rtol=1e-5)

    def log_sigmoid(z):
        return -np.log1p(np.exp(-z))

    bce = -(log_sigmoid(2.0) + log_sigmoid(-0.0))  # summed over the classes, labels (1, 0)
    patch = 0.25 * -log_sigmoid(1.0) + 0.75 * -log_sigmoid(0.0)  # the best positive per patch: class 0
    multilabel = lba.lba_loss(np.array([[1.0, 0.0]], "float32"), outputs, zoo.tasks.get_task("multilabel"),
                              patch_loss_weight=0.1)
    np.testing.assert_allclose(value(multilabel), [bce + 0.1 * patch], rtol=1e-5)
    both = lba.lba_loss(np.array([[1.0, 1.0]], "float32"), outputs, zoo.tasks.get_task("multilabel"),
                        patch_loss_weight=1.0)  # patch 2: class 1 (3.0) beats class 0 (0.0)
    bce_both = -(log_sigmoid(2.0) + log_sigmoid(0.0))
    np.testing.assert_allclose(value(both), [bce_both + 0.25 * -log_sigmoid(1.0) + 0.75 * -log_sigmoid(3.0)],
                               rtol=1e-5)
    none = lba.lba_loss(np.array([[0.0, 0.0]], "float32"), outputs, zoo.tasks.get_task("multilabel"),
                        patch_loss_weight=1.0)  # no positive: no patch term
    np.testing.assert_allclose(value(none), [-(log_sigmoid(-2.0) + log_sigmoid(0.0))], rtol=1e-5)


def test_the_patch_loss_weight_ramp_of_the_code():
    ramp = LossSchedule(**lba.LBA_SCHEDULES["patch_loss_weight"])
    values = {e: float(value(ramp.value(e))) for e in (0, 0.99, 1, 1.5, 40, 80, 120)}
    assert values[0] == 0.0 and values[0.99] == 0.0  # the whole first epoch
    assert values[1] == pytest.approx(0.1 * np.exp(-5 * (79 / 80) ** 2)) == values[1.5]  # 7.6e-4, per epoch
    assert values[1] == pytest.approx(7.6e-4, abs=1e-5) and values[40] == pytest.approx(0.1 * np.exp(-1.25))
    assert values[80] == pytest.approx(0.1) and values[120] == pytest.approx(0.1)
    linear = LossSchedule(0.0, 1.0, 4)
    assert float(value(linear.value(1.0))) == pytest.approx(0.25) and float(value(linear.value(9.0))) == 1.0
    with pytest.raises(ValueError, match="shape must be one of"):
        LossSchedule(0.0, 1.0, 4, shape="cosine")


def test_the_core_ramps_the_patch_loss_unless_the_recipe_fixes_it():
    from zoo.training.core import TrainingCore
    from zoo.training.recipe import TrainConfig

    model = zoo.build("lba_resnet18", input_shape=(16, 16, 3), kernel_size=5, stride=2, **TINY)
    core = TrainingCore(model, TrainConfig(), steps_per_epoch=10)
    assert float(value(core.loss_arguments(5)["patch_loss_weight"])) == 0.0
    assert float(value(core.loss_arguments(400)["patch_loss_weight"])) == pytest.approx(0.1 * np.exp(-1.25))
    fixed = TrainingCore(model, TrainConfig(loss_kwargs={"patch_loss_weight": 0.05}), steps_per_epoch=10)
    assert fixed.loss_arguments(5)["patch_loss_weight"] == 0.05 and not fixed.schedules
    mine = TrainingCore(model, TrainConfig(loss_schedules={"patch_loss_weight": {"start": 0, "end": 1, "epochs": 2}}),
                        steps_per_epoch=10)
    assert float(value(mine.loss_arguments(5)["patch_loss_weight"])) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="both as a constant"):
        TrainingCore(model, TrainConfig(loss_kwargs={"patch_loss_weight": 0.05},
                                        loss_schedules={"patch_loss_weight": {"start": 0, "end": 1, "epochs": 2}}), 10)
    with pytest.raises(ValueError, match="takes the keys"):
        TrainingCore(model, TrainConfig(loss_schedules={"patch_loss_weight": {"start": 0, "end": 1}}), 10)


def test_bad_configurations_say_what_to_change():
    with pytest.raises(ValueError, match="at least 9x9"):
        zoo.build("lba_resnet18", input_shape=(16, 16, 3), stage_strides=(1, 2, 1, 1), **TINY)
    with pytest.raises(ValueError, match="stage_strides is 4 strides"):
        zoo.build("lba_resnet18", stage_strides=(1, 2), **TINY)
    with pytest.raises(ValueError, match="not .face."):
        zoo.build("lba_resnet18", backbone="face", **TINY)
    with pytest.raises(ValueError, match="Did you mean: stride1_resnet18"):
        zoo.build("lba_resnet18", backbone="stride1_resnet81", **TINY)
    with pytest.raises(ValueError, match="head must be one of"):
        zoo.build("lba_resnet18", head="caps", **TINY)


def test_registered_backbones_build_the_taps_they_declare():
    import keras

    for name in backbones.backbone_names():
        spec = backbones.get_backbone(name)
        x = keras.Input((32, 32, 3))
        if spec.trunk is not None:
            trunk = spec.trunk(x, width=0.0625)
            output = frozen = trunk.output  # feature_layers: every layer of a trunk
            endpoints = trunk.endpoints
            built = (trunk.gradcam_layer, trunk.inner_layer, trunk.feature_layers)
        elif name == "imagenet":
            continue  # keras.applications' layer names; its taps are the nested models' names (test_models)
        else:
            split = backbones.make_backbone(name, 20, (32, 32, 3), width=4)
            frozen = split.features(split.preprocess(x))  # feature_layers: the extractor's layers
            output, endpoints = split.last_stage(frozen), {}
            built = (split.gradcam_layer, split.inner_layer, split.feature_layers)
        model = keras.Model(x, output)
        names = {layer.name for layer in model.layers}
        assert built == spec.taps(), name
        assert {built[0], built[1], *endpoints} <= names, name
        extractor = keras.Model(x, frozen).layers[1:]
        assert all(any(layer.name.startswith(p) for p in built[2]) for layer in extractor), name
        if spec.num_stages:  # stride-free: the features keep the input's layout
            assert output.shape[1:3] == (32, 32), name


def test_trunks_without_stage_strides_refuse_them_and_lba_needs_a_stride_free_one():
    with pytest.raises(InvalidInput, match="no stage_strides option"):
        zoo.build("plain_stride1_vgg11", backbone="cifar_vgg16", stage_strides=(1, 1))
    with pytest.raises(InvalidInput, match="stride-free trunk backbone.*stride1_resnet18"):
        zoo.build("lba_resnet18", backbone="cifar_vgg16", **TINY)
    model = zoo.build("plain_stride1_vgg11", backbone="cifar_vgg16", width=0.0625)
    assert model.get_layer("conv13_relu").output.shape[1:3] == (2, 2)
    assert "pool5" in {layer.name for layer in model.layers}


def test_a_misspelt_registration_option_is_an_error():
    with pytest.raises(TypeError, match="Did you mean: loss_schedules"):
        zoo.registry.register_model("lba_misspelt", "test", lba.loss_based_attention, lba.lba_loss, lba.feature_info,
                                    loss_schedule={})
    assert "lba_misspelt" not in zoo.list_models()


def test_both_engines_and_jax_give_the_same_losses_and_one_step_update(tmp_path):
    import importlib.util

    import keras

    from tests.conftest import toy_images
    from tests.helpers import train_step

    keras.utils.set_random_seed(0)
    start = train_step.build("lba")
    start.save_weights(str(tmp_path / "start.weights.h5"))
    batch, labels = toy_images(16, size=16, seed=0)
    runs = {engine: train_step.one_step("lba", tmp_path / "start.weights.h5", batch, labels, engine)
            for engine in ("loop", "fit")}
    (loop_losses, loop_weights), (fit_losses, fit_weights) = runs["loop"], runs["fit"]
    assert loop_losses["loss"] > loop_losses["logits_loss"]  # the patch term, weighted 0.1
    for part in ("loss", "logits_loss"):
        assert loop_losses[part] == pytest.approx(fit_losses[part], rel=1e-5), part
    for a, b in zip(loop_weights, fit_weights):
        np.testing.assert_allclose(a, b, atol=3e-6)
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    np.savez(tmp_path / "batch.npz", images=batch, labels=labels)
    jax_losses, jax_weights, backend = train_step.run_other_backend(
        "lba", tmp_path / "start.weights.h5", tmp_path / "batch.npz", tmp_path / "jax.npz")
    assert backend == "jax" and jax_losses["loss"] == pytest.approx(fit_losses["loss"], rel=1e-4)
    # the update, relative to its size: float rounding only (measured 1.8%, in the backbone's last stage;
    # a wrong gradient anywhere is ~100%): the capsule head's norms and thresholds amplify it
    worst = train_step.largest_update_difference(jax_weights, fit_weights, start.weights)
    print(f"largest JAX - TensorFlow difference: {worst:.2%} of the step")
    assert worst <= 0.03


@pytest.mark.parametrize("arch", ["lba_resnet18", "lba_capsule_resnet18"])
def test_exports_to_tflite_builtins_with_the_patch_weights(arch, tmp_path):
    from zoo import export

    model = zoo.build(arch, **TINY)
    batch = images(2).astype("uint8")
    expected = model(batch.astype("float32"), training=False)
    out = export.tflite_runner(export.export(model, tmp_path / "m.tflite", "tflite"))(image=batch)
    for key in ("logits", "patch_logits", "patch_weights"):
        np.testing.assert_allclose(out[key], value(expected[key]), atol=1e-4, rtol=1e-3, err_msg=key)


def test_explain_shows_the_patch_weights_and_gradcam_of_the_patch_features():
    from zoo import explain

    model = zoo.build("lba_resnet18", **TINY)
    maps = explain.attention_maps(model, images(2))
    assert list(maps) == ["patch_weights"] and maps["patch_weights"].shape == (2, 32, 32)
    shown = explain.display_maps(model, images(2))["patch_weights"]
    assert shown.min() == 0.0 and shown.max() == pytest.approx(1.0)  # min-max per map: weights summing to 1
    both = explain.explain(model, images(2), methods=("attention", "gradcam"), target=1)
    assert {k: v.shape for k, v in both.items()} == {"attention": (2, 32, 32), "gradcam": (2, 32, 32)}
    assert zoo.registry.feature_info(model).map("patch_weights").scale_label == (
        "patch_weights: patch weights\nmin-max per map")


def test_patch_precision_and_recall_by_hand():
    from zoo.explain import metrics

    # 2x2 patches of 10 px on a 20x20 image; the object (0, 0, 10, 12) overlaps the top two patches
    window, boxes = (10, 10), np.array([[0, 0, 10, 12]])
    logits = np.zeros((1, 2, 2, 2), "float32")
    logits[0, ..., 0] = [[1.0, -1.0], [1.0, 1.0]]  # class 0 (the label): positive at (0,0), (1,0), (1,1)
    logits[0, ..., 1] = 1.0  # class 1, not the image's: ignored
    weights = np.array([[[0.4, 0.2], [0.4, 0.0]]], "float32")  # (1,1) zeroed by the threshold
    assert metrics.patch_precision_recall(logits, weights, np.array([0]), boxes, window) == (0.5, 0.5)
    weights_top = np.array([[[0.5, 0.5], [0.0, 0.0]]], "float32")
    assert metrics.patch_precision_recall(logits, weights_top, np.array([0]), boxes, window) == (1.0, 0.5)
    multi = metrics.patch_precision_recall(logits, weights, np.array([[0.0, 1.0]]), boxes, window, multilabel=True)
    assert multi == (pytest.approx(2 / 3), 1.0)  # class 1 positive on the three kept patches, two of them on it
    np.testing.assert_array_equal(metrics.patch_boxes((1, 2), (18, 8)), [[[0, 0, 18, 18], [0, 8, 18, 26]]])


def test_benchmark_scores_the_patch_weights_with_patch_precision_and_recall(tmp_path):
    from zoo.explain.benchmark import benchmark, format_table

    model = zoo.build("lba_resnet18", **TINY)
    assert zoo.registry.feature_info(model).map("patch_weights").patch_window == (9, 4)
    assert zoo.registry.feature_info("lba_resnet18", input_shape=(64, 64, 3)).maps[0].patch_window == (18, 8)
    x = images(4).astype("uint8")
    boxes = np.array([[0, 0, 12, 12], [10, 10, 30, 30], [20, 0, 32, 8], [0, 20, 8, 32]])
    masks = np.zeros((4, 32, 32), bool)
    for mask, (y0, x0, y1, x1) in zip(masks, boxes):
        mask[y0:y1, x0:x1] = True
    np.savez(tmp_path / "c.npz", x_test=x, y_test=np.array([0, 1, 2, 0]), boxes_test=boxes, masks_test=masks)
    rows = benchmark({"lba": model}, tmp_path / "c.npz", methods=("attention", "gradcam"), progress=False)
    attention, gradcam = rows
    assert 0.0 <= attention["patch_recall"] <= 1.0 and "patch_precision" in attention
    assert "patch_recall" not in gradcam  # a property of the patch logits, not of a post-hoc map
    table = format_table(rows)
    assert "patch precision | patch recall |" in table.splitlines()[0] and table.splitlines()[3].endswith("| - | - |")


def test_patch_weights_are_drawn_over_their_own_windows():
    from zoo import explain
    from zoo.explain.maps import patch_map

    weights = np.array([[[0.25, 0.75]]], "float32")  # one row of two patches, 4 px windows at stride 2
    drawn = patch_map(weights, (4, 2), (4, 6))[0]
    np.testing.assert_allclose(drawn[0], [0.25, 0.25, 0.5, 0.5, 0.75, 0.75])  # the overlap: their mean
    np.testing.assert_allclose(patch_map(np.full((1, 3, 3), 1 / 9), (4, 2), (9, 9))[0, :8, :8], 1 / 9)  # even
    assert (drawn == drawn[0]).all()  # every row of the window alike
    model = zoo.build("lba_resnet18", **TINY)
    shown = explain.attention_maps(model, images(2))["patch_weights"]
    assert (shown[:, 29:, :] == 0).all() and (shown[:, :, 29:] == 0).all()  # 9x9 windows at stride 4 stop at 29
    assert (shown[:, :29, :29] > 0).all()
