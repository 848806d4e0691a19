"""ABN architectures: shapes, block types, attention modes, loss, backbones."""

import ast

import keras
import numpy as np
import pytest

import zoo
from zoo.models import abn
from zoo.models.layers import AttentionGate
from zoo.tasks import get_task


@pytest.mark.parametrize("depth,block,first_block_layers", [(20, "basic", 2), (44, "bottleneck", 3)])
def test_cifar_abn_outputs_and_block_type(depth, block, first_block_layers):
    model = zoo.build(f"abn_resnet{depth}", num_classes=7, width=4)
    outputs = model(np.zeros((2, 32, 32, 3), "float32"))
    assert outputs["logits"].shape == (2, 7)
    assert outputs["attention_logits"].shape == (2, 7)
    assert outputs["attention"].shape == (2, 16, 16, 1)  # feature-extractor resolution
    n = (depth - 2) // 6  # official code: 6n+2 for both block types
    blocks = [layer for layer in model.layers if layer.name.startswith("stage3_block") and layer.name.endswith("_out")]
    assert len(blocks) == n
    convs = [layer for layer in model.layers
             if layer.name.startswith("stage1_block1_") and layer.name.endswith("_conv")]
    assert len([c for c in convs if "down" not in c.name]) == first_block_layers


def test_attention_map_is_a_sigmoid_of_a_3x3_conv_and_branch_runs_at_stride_1():
    model = zoo.build("abn_resnet20", width=4)
    assert model.get_layer("att_conv3").kernel.shape == (3, 3, 10, 1)
    assert zoo.build("abn_resnet20", width=4, map_kernel_size=1).get_layer("att_conv3").kernel.shape == (1, 1, 10, 1)
    assert model.get_layer("att_stage3_block1_out").output.shape[1:3] == (16, 16)
    assert model.get_layer("stage3_block1_out").output.shape[1:3] == (8, 8)
    m = model(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"), training=True)["attention"]
    assert np.all((np.asarray(m) > 0) & (np.asarray(m) < 1))


def test_depth_validation():
    with pytest.raises(ValueError, match="6n\\+2"):
        zoo.build("abn_resnet20", depth=21)


def test_attention_gate_modes():
    g = np.full((1, 2, 2, 3), 2.0, "float32")
    m = np.array([[[[0.0], [0.5]], [[1.0], [0.25]]]], "float32")
    expected = {"residual": g * (1 + m), "multiply": g * m, "none": g}
    for mode, want in expected.items():
        np.testing.assert_allclose(AttentionGate(mode)(g, m), want)
    with pytest.raises(ValueError, match="attention mode"):
        AttentionGate("add")


def test_attention_mode_none_ignores_the_map():
    model = zoo.build("abn_resnet20", width=4, attention_mode="none")
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    before = np.asarray(model(x)["logits"])
    conv3 = model.get_layer("att_conv3")
    conv3.kernel.assign(conv3.kernel * 0 + 5.0)  # change the map drastically
    np.testing.assert_allclose(model(x)["logits"], before, rtol=1e-5)
    residual = zoo.build("abn_resnet20", width=4)
    before = np.asarray(residual(x)["logits"])
    residual.get_layer("att_conv3").kernel.assign(residual.get_layer("att_conv3").kernel * 0 + 5.0)
    assert np.abs(np.asarray(residual(x)["logits"]) - before).max() > 1e-4


def test_any_input_size():
    model = zoo.build("abn_resnet20", width=4, input_shape=(None, None, 3))
    for size in (32, 48):
        out = model(np.zeros((1, size, size, 3), "float32"))
        assert out["attention"].shape == (1, size // 2, size // 2, 1)
        assert out["logits"].shape == (1, 10)


def test_abn_loss_is_sum_of_both_cross_entropies():
    rng = np.random.default_rng(0)
    logits, att_logits = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    y = np.array([0, 3, 4, 1])

    def ce(z):
        z = z - z.max(axis=1, keepdims=True)
        return -(z[np.arange(4), y] - np.log(np.exp(z).sum(axis=1)))

    outputs = {"logits": logits.astype("float32"), "attention_logits": att_logits.astype("float32")}
    multiclass = get_task("multiclass")
    np.testing.assert_allclose(abn.abn_loss(y, outputs, multiclass), ce(logits) + ce(att_logits), rtol=1e-5)
    half = abn.abn_loss(y, outputs, multiclass, attention_loss_weight=0.5)
    np.testing.assert_allclose(half, ce(logits) + 0.5 * ce(att_logits), rtol=1e-5)
    onehot = np.eye(5, dtype="float32")[y]
    np.testing.assert_allclose(multiclass.loss(onehot, logits.astype("float32")), ce(logits), rtol=1e-5)


def test_abn_loss_of_a_multilabel_model_is_binary_cross_entropy_of_both_heads():
    rng = np.random.default_rng(1)
    logits, att_logits = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    y = (rng.random((3, 4)) < 0.5).astype("float32")

    def bce(z):
        p = 1 / (1 + np.exp(-z))
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)

    outputs = {"logits": logits.astype("float32"), "attention_logits": att_logits.astype("float32")}
    got = abn.abn_loss(y, outputs, get_task("multilabel"))
    np.testing.assert_allclose(got, bce(logits) + bce(att_logits), rtol=1e-5)


def test_imagenet_abn_on_keras_applications_backbone(tmp_path):
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    weights_file = tmp_path / "resnet50_notop.weights.h5"
    backbone.save_weights(weights_file)
    model = zoo.build("abn_resnet50", num_classes=5, input_shape=(64, 64, 3), backbone_weights=str(weights_file))
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    assert out["logits"].shape == (1, 5)
    assert out["attention"].shape == (1, 4, 4, 1)  # conv4 resolution (stride 16)
    # the feature extractor and the perception conv5 carry the given backbone weights
    fe = model.get_layer("feature_extractor").get_layer("conv2_block1_1_conv").kernel
    np.testing.assert_array_equal(fe, backbone.get_layer("conv2_block1_1_conv").kernel)
    p5 = model.get_layer("perception_conv5").get_layer("conv5_block3_3_conv").kernel
    np.testing.assert_array_equal(p5, backbone.get_layer("conv5_block3_3_conv").kernel)
    assert model.get_layer("att_conv5_block3_out").output.shape[1:3] == (4, 4)  # stride-1 conv5


def test_model_code_is_backend_agnostic():
    """Model modules use keras.layers / keras.ops only (no TensorFlow), so JAX/PyTorch run them."""
    from pathlib import Path

    root = Path(zoo.__file__).parent
    modules = [*root.glob("models/*.py"), *root.glob("explain/*.py"), root / "registry.py", root / "tasks.py",
               root / "training/core.py", root / "training/recipe.py", root / "training/fit.py"]
    assert len(modules) >= 9
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in imported if m.split(".")[0] == "tensorflow"], module
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "tf"], module


@pytest.mark.parametrize("backend,arch", [("jax", "abn_resnet20"), ("jax", "abn_multitask_faceresnet20"),
                                          ("jax", "multichannel_faceresnet20"), ("jax", "plain_faceresnet20"),
                                          ("jax", "ltpa_vgg_att3"), ("jax", "ltpa_vgg16")])
def test_same_weights_same_outputs_on_another_backend(backend, arch, tiny_model, tmp_path):
    """A model saved under TensorFlow loads and runs under JAX with TensorFlow unimportable."""
    import importlib.util
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.helpers.other_backend import backend_env
    from zoo import hub

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    if arch.startswith("ltpa"):  # LTPA's shipped weights were trained under JAX
        tiny_model = zoo.build(arch, num_classes=3, width=0.125)
    elif arch != "abn_resnet20":
        from tests.test_attributes import tiny

        tiny_model = tiny(arch)
    size = tiny_model.input.shape[1]
    rng = np.random.default_rng(0)
    for variable in tiny_model.non_trainable_variables:  # non-trivial BN statistics
        variable.assign(rng.uniform(0.5, 1.5, variable.shape))
    hub.save_model(tiny_model, tmp_path / "m")
    images = rng.uniform(0, 255, (3, size, size, 3)).astype("float32")
    np.save(tmp_path / "x.npy", images)
    env = backend_env(backend)
    result = subprocess.run([sys.executable, "-m", "tests.helpers.other_backend", str(tmp_path / "m"),
                             str(tmp_path / "x.npy"), str(tmp_path / "out.npz")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    other = np.load(tmp_path / "out.npz")
    assert str(other["backend"]) == backend
    for key, value in tiny_model(images, training=False).items():
        np.testing.assert_allclose(other[key], value, rtol=1e-4, atol=1e-4, err_msg=key)
    maps = zoo.attention_maps(tiny_model, images)
    assert bool(maps) == bool(zoo.feature_info(tiny_model).maps)  # the baselines have no maps of their own
    assert {f"map_{k}" for k in maps} == {k for k in other.files if k.startswith("map_")}
    for key, value in maps.items():
        np.testing.assert_allclose(other[f"map_{key}"], value, atol=1e-4, err_msg=key)


DECLARED = {  # one architecture per family and backbone, small
    "abn_resnet20": {"width": 4},
    "abn_resnet50": {"input_shape": (64, 64, 3)},
    "abn_multitask_faceresnet20": {"width": 4},
    "multichannel_faceresnet20": {"width": 4, "hidden": 2},
    "plain_faceresnet20": {"width": 4},
    "ltpa_vgg_att3": {"width": 0.125},
    "ltpa_vgg16": {"width": 0.125},
}


@pytest.mark.parametrize("arch", list(DECLARED))
def test_declared_taps_and_heads_mean_what_they_say(arch):
    """Values, not names: the heads are exactly the layers whose weights depend on the number of
    classes; the prediction depends on the Grad-CAM layer; the inner layer is at least as fine;
    each map's values follow its declared kind."""
    from zoo.explain import methods

    three, five = (zoo.build(arch, num_classes=k, **DECLARED[arch]) for k in (3, 5))
    info = zoo.feature_info(three)
    changed = {layer.name for layer in three.layers
               if [w.shape for w in layer.weights] != [w.shape for w in five.get_layer(layer.name).weights]}
    assert changed == set(info.heads), arch
    assert not [h for h in info.heads if h.startswith(info.feature_layers)], arch  # frozen parts are no heads

    size = three.input.shape[1:3]
    images = np.random.default_rng(0).uniform(0, 255, (2, *size, 3)).astype("float32")
    features, gradient = methods.layer_gradient(three, images, np.array([0, 1]), info.gradcam_layer)
    assert len(features.shape) == 4 and float(np.abs(np.asarray(gradient)).max()) > 0, arch
    if info.inner_layer is not None:
        inner, inner_gradient = methods.layer_gradient(three, images, np.array([0, 1]), info.inner_layer)
        assert len(inner.shape) == 4 and inner.shape[1] >= features.shape[1], arch
        assert float(np.abs(np.asarray(inner_gradient)).max()) > 0, arch
    outputs = {k: np.asarray(v) for k, v in three(images, training=False).items()}
    for tap in info.maps:
        value = outputs[tap.output]
        if tap.kind == "sigmoid":
            assert value.shape[-1] == 1 and 0 <= value.min() and value.max() <= 1, tap
        elif tap.kind == "softmax_space":
            np.testing.assert_allclose(value.sum(axis=(1, 2, 3)), 1.0, rtol=1e-4, err_msg=tap.output)
        elif tap.kind == "per_attribute":
            assert value.ndim == 4 and value.shape[-1] == 3, tap
        elif tap.kind == "per_channel":
            assert value.ndim == 5 and value.shape[-1] == 3, tap
        else:
            assert tap.kind == "scores" and value.ndim == 4, tap


@pytest.mark.parametrize("name, shapes", [
    ("plain_faceresnet20.celeba64", {"logits": (2, 40)}),
    ("abn_multitask_faceresnet20.celeba64", {"logits": (2, 40), "attention_logits": (2, 40),
                                             "attention": (2, 8, 8, 40)}),
    ("multichannel_faceresnet20.celeba64", {"logits": (2, 40), "attention": (2, 4, 4, 64, 40),
                                            "attention_spatial": (2, 4, 4, 40), "channel_importance": (2, 64, 40)}),
])
def test_the_pretrained_face_models_output_what_the_readme_says(name, shapes):
    model = zoo.load(name)
    outputs = model(np.zeros((2, 64, 64, 3), "float32"), training=False)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == shapes
    assert len(model.zoo_config["class_names"]) == 40 and "Smiling" in model.zoo_config["class_names"]
