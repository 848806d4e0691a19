"""Learn To Pay Attention: every variant's shapes, attention normalisation, dp/pc, pooling, export."""

import itertools

import keras
import numpy as np
import pytest

import zoo
from zoo.models.ltpa import AttentionPooling, Compatibility

W = 0.125  # 1/8 width: the same graph, small enough for the CPU test suite
X = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("levels,placement", itertools.product([1, 2, 3], ["before", "after"]))
def test_levels_and_placement_shapes(levels, placement):
    model = zoo.build(f"ltpa_vgg_att{levels}", num_classes=7, width=W, placement=placement)
    out = model(X)
    sizes = {"before": [32, 16, 8], "after": [16, 8, 4]}[placement][3 - levels:]
    assert out["logits"].shape == (2, 7)
    for index, size in enumerate(sizes, start=1):
        assert out[f"attention_{index}"].shape == (2, size, size, 1)
        assert out[f"attention_scores_{index}"].shape == (2, size, size, 1)
    assert f"attention_{levels + 1}" not in out


@pytest.mark.parametrize("compatibility,normalization,aggregation,projection",
                         itertools.product(["pc", "dp"], ["softmax", "sigmoid"], ["concat", "indep"],
                                           ["global", "local"]))
def test_every_variant_builds_and_normalises(compatibility, normalization, aggregation, projection):
    model = zoo.build("ltpa_vgg_att3", width=W, compatibility=compatibility, normalization=normalization,
                      aggregation=aggregation, projection=projection)
    out = model(X, training=False)
    assert out["logits"].shape == (2, 10)
    for level in (1, 2, 3):
        a = np.asarray(out[f"attention_{level}"])
        if normalization == "softmax":  # Eq. 1: a distribution over the spatial positions
            np.testing.assert_allclose(a.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
        else:
            assert np.all((a >= 0) & (a <= 1))
        scores = np.asarray(out[f"attention_scores_{level}"])
        if normalization == "softmax":
            flat = scores.reshape(2, -1)
            expected = np.exp(flat - flat.max(1, keepdims=True))
            np.testing.assert_allclose(a.reshape(2, -1), expected / expected.sum(1, keepdims=True), rtol=1e-4,
                                       atol=1e-7)
    heads = [layer.name for layer in model.layers if layer.name.startswith("fc")]
    assert heads == (["fc"] if aggregation == "concat" else ["fc1", "fc2", "fc3", "fc_average"])


def test_dp_has_no_parameters_and_pc_has_u():
    assert Compatibility("dp").weights == []
    pc, dp = (zoo.build("ltpa_vgg_att3", width=W, compatibility=c) for c in ("pc", "dp"))
    assert all(not layer.weights for layer in dp.layers if isinstance(layer, Compatibility))
    u_params = sum(layer.count_params() for layer in pc.layers if isinstance(layer, Compatibility))
    assert pc.count_params() - dp.count_params() == u_params == (32 + 1) + 2 * (64 + 1)  # u and bias per level


def test_compatibility_and_pooling_formulas():
    rng = np.random.default_rng(1)
    local = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    g = rng.normal(size=(2, 5)).astype("float32")
    dp = np.asarray(Compatibility("dp")(local, g))[..., 0]
    np.testing.assert_allclose(dp, np.einsum("bhwc,bc->bhw", local, g), rtol=1e-5)
    pc_layer = Compatibility("pc")
    pc = np.asarray(pc_layer(local, g))[..., 0]
    u, b = (np.asarray(w) for w in pc_layer.score.weights)
    np.testing.assert_allclose(pc, np.einsum("bhwc,c->bhw", local + g[:, None, None], u[:, 0]) + b[0], rtol=1e-4)
    scores = rng.normal(size=(2, 3, 4, 1)).astype("float32")
    a, pooled = AttentionPooling("softmax")(local, scores)
    np.testing.assert_allclose(pooled, np.einsum("bhw,bhwc->bc", np.asarray(a)[..., 0], local), rtol=1e-5)
    a, pooled = AttentionPooling("sigmoid")(local, scores)
    np.testing.assert_allclose(a, 1 / (1 + np.exp(-scores)), rtol=1e-5)
    np.testing.assert_allclose(pooled, np.einsum("bhw,bhwc->bc", np.asarray(a)[..., 0], local) / 12, rtol=1e-5)


def test_attention_maps_api_upsamples_every_level():
    model = zoo.build("ltpa_vgg_att3", width=W)
    maps = zoo.attention_maps(model, X)
    assert set(maps) == {f"attention_{i}" for i in (1, 2, 3)} | {f"attention_scores_{i}" for i in (1, 2, 3)}
    assert all(m.shape == (2, 32, 32) for m in maps.values())


def test_baseline_vgg_has_no_attention_and_the_same_trunk_width():
    base = zoo.build("ltpa_vgg16", width=W)
    att = zoo.build("ltpa_vgg_att3", width=W)
    assert list(base(X)) == ["logits"] and zoo.attention_maps(base, X) == {}
    assert base.get_layer("conv13_conv").kernel.shape == att.get_layer("conv13_conv").kernel.shape


@pytest.mark.parametrize("arch", ["ltpa_vgg_att3", "ltpa_vgg16"])
def test_dropout_scale_multiplies_every_rate_and_zero_removes_dropout(arch):
    def rates(model):
        return {layer.name: layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}

    official, half, none = (rates(zoo.build(arch, width=W, dropout_scale=s)) for s in (1.0, 0.5, 0.0))
    assert official["conv1_drop"] == pytest.approx(0.3) and max(official.values()) == pytest.approx(0.5)
    assert half.keys() == official.keys()
    assert all(half[name] == pytest.approx(rate / 2) for name, rate in official.items())
    assert none == {}


def test_batch_norm_follows_cifar_torch():
    """Torch's BN momentum 0.1 is Keras' 0.9 (a 0.99 average lags ~100 steps behind at lr 0.1)."""
    bns = [layer for layer in zoo.build("ltpa_vgg_att3", width=W).layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 19 and {(bn.momentum, bn.epsilon) for bn in bns} == {(0.9, 1e-3)}


def test_ltpa_exports_to_tflite_builtins_with_parity(tmp_path):
    from zoo import export

    model = zoo.build("ltpa_vgg_att2", width=W, compatibility="dp")
    images = X.astype("uint8")
    expected = model(images.astype("float32"), training=False)
    out = export.tflite_runner(export.export(model, tmp_path / "m.tflite", "tflite"))(image=images)
    for key in ("logits", "attention_1", "attention_2"):
        np.testing.assert_allclose(out[key], expected[key], atol=1e-4, rtol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="levels"):
        zoo.build("ltpa_vgg_att3", levels=4)
    with pytest.raises(ValueError, match="aggregation"):
        zoo.build("ltpa_vgg_att3", aggregation="sum")
    with pytest.raises(ValueError, match="compatibility"):
        Compatibility("cos")
