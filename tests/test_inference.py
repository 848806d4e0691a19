"""Batch norm folded into the convolution before it (zoo.inference): same outputs, refused where
it would be wrong, and used by evaluation and export."""

import keras
import numpy as np
import pytest
from keras import layers

import zoo
from tests.conftest import TINY, toy_images
from zoo import data, hub, inference
from zoo.errors import InvalidInput
from zoo.evaluation import evaluate

BUILD = {"input_shape": (16, 16, 3), **TINY}


def randomise_batch_norms(model, seed=0):
    """Moving statistics and scales far from the initial (0, 1), so that folding them matters."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.3, 3.0, layer.moving_variance.shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape))
    return model


def assert_same_outputs(model, folded, images, rtol=1e-4):
    expected, got = model(images, training=False), folded(images, training=False)
    assert set(expected) == set(got)
    for name in expected:
        a, b = np.asarray(expected[name]), np.asarray(got[name])
        np.testing.assert_allclose(b, a, atol=rtol * np.abs(a).max(), err_msg=name)


def count(model, kind):
    return sum(isinstance(layer, kind) for layer in model._flatten_layers(include_self=False))


def test_every_family_folds_to_the_same_outputs():
    """One architecture per family in its declared small configuration (a new family is checked
    without editing this test): outputs equal, every conv-BN pair folded, layer names kept."""
    checked = set()
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        if spec.family in checked | {"test"} or spec.test_config is None:
            continue
        model = randomise_batch_norms(zoo.build(name, num_classes=3, **spec.test_config))
        shape = [d or 32 for d in model.input.shape[1:]]
        images = np.random.default_rng(1).uniform(0, 255, (2, *shape)).astype("float32")
        folded = zoo.fold_batch_norm(model)
        assert_same_outputs(model, folded, images)
        pairs = inference.foldable_pairs(model)
        assert len(pairs) == count(folded, inference.FoldedBatchNormalization) > 0, name
        assert [layer.name for layer in folded.layers] == [layer.name for layer in model.layers], name
        assert folded.zoo_config == {**model.zoo_config, "batch_norm_folded": True}
        assert zoo.registry.feature_info(folded) == zoo.registry.feature_info(model)
        checked.add(spec.family)
    assert checked >= {"abn", "ltpa", "multichannel", "sfocus", "lba"}, checked


def test_the_folded_weights_are_the_batch_norm_equation():
    """``W' = W s``, ``b' = (b - mean) s + beta``, ``s = gamma / sqrt(var + eps)``; a BN without
    scale or centre, or after a conv with a bias, folds too."""
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, use_bias=True, name="c1")(inputs)
    x = layers.BatchNormalization(scale=False, epsilon=1e-3, name="b1")(x)
    x = layers.Conv2D(2, 1, use_bias=False, name="c2")(x)
    x = layers.BatchNormalization(center=False, name="b2")(x)
    model = randomise_batch_norms(keras.Model(inputs, {"logits": layers.GlobalAveragePooling2D()(x)}))
    folded = inference.fold_batch_norm(model)
    conv, bn = model.get_layer("c1"), model.get_layer("b1")
    s = 1.0 / np.sqrt(np.asarray(bn.moving_variance) + 1e-3)
    np.testing.assert_allclose(folded.get_layer("c1").kernel, np.asarray(conv.kernel) * s, rtol=1e-6)
    np.testing.assert_allclose(folded.get_layer("c1").bias,
                               (np.asarray(conv.bias) - bn.moving_mean) * s + np.asarray(bn.beta), rtol=1e-5)
    assert folded.get_layer("c2").use_bias and not model.get_layer("c2").use_bias
    assert_same_outputs(model, folded, np.random.default_rng(0).normal(size=(3, 6, 6, 2)).astype("float32"), 1e-5)


def test_a_batch_norm_is_left_where_folding_would_change_another_reader():
    """A conv whose output is also read elsewhere (or is a model output), a conv with an
    activation, a BN after something that is not a conv: all stay as they are."""
    inputs = keras.Input((6, 6, 2))
    shared = layers.Conv2D(2, 3, padding="same", name="shared")(inputs)
    a = layers.BatchNormalization(name="bn_shared")(shared)
    relu_conv = layers.Conv2D(2, 3, padding="same", activation="relu", name="relu_conv")(inputs)
    b = layers.BatchNormalization(name="bn_relu")(relu_conv)
    c = layers.BatchNormalization(name="bn_input")(inputs)
    plain = layers.Conv2D(2, 3, padding="same", name="plain")(inputs)
    d = layers.BatchNormalization(name="bn_plain")(plain)
    total = layers.Add()([a, b, c, d, shared])
    model = randomise_batch_norms(keras.Model(inputs, {"logits": layers.Flatten()(total)}))
    assert inference.foldable_pairs(model) == {"plain": "bn_plain"}
    folded = inference.fold_batch_norm(model)
    assert isinstance(folded.get_layer("bn_shared"), layers.BatchNormalization)
    assert_same_outputs(model, folded, np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32"), 1e-5)


def test_nested_backbones_are_folded_inside():
    model = randomise_batch_norms(zoo.build("abn_resnet50", num_classes=3, **zoo.get_spec("abn_resnet50").test_config))
    folded = zoo.fold_batch_norm(model)
    backbone = folded.get_layer("feature_extractor")
    assert count(backbone, inference.FoldedBatchNormalization) > 10
    assert count(backbone, layers.BatchNormalization) == 0
    assert_same_outputs(model, folded, np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32"))


@keras.saving.register_keras_serializable(package="tests")
class ForgetfulScale(layers.Layer):
    """A layer whose config loses its argument: it does not rebuild from its config."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        config = super().get_config()  # Keras records the constructor's arguments; this layer drops one
        config.pop("factor", None)
        return config


def test_a_layer_that_does_not_rebuild_is_caught_not_folded_silently():
    inputs = keras.Input((4, 4, 1))
    x = layers.BatchNormalization()(layers.Conv2D(2, 1, name="c")(inputs))
    model = keras.Model(inputs, {"logits": layers.Flatten()(ForgetfulScale(3.0)(x))})
    with pytest.raises(InvalidInput, match="changed the output 'logits'.*use the model unfolded"):
        inference.fold_batch_norm(model)
    with pytest.warns(UserWarning, match="evaluating .* unfolded: folding the batch norms changed"):
        assert inference.inference_model(model, "evaluating") is model  # evaluate() goes on with the model as it is


def test_a_folded_model_is_for_inference_only(tmp_path):
    folded = zoo.fold_batch_norm(zoo.build("abn_resnet20", num_classes=3, **BUILD))
    with pytest.raises(InvalidInput, match="folded into its convolutions.*cannot be saved as a zoo model"):
        hub.save_model(folded, tmp_path / "m")
    assert not (tmp_path / "m").exists()
    from zoo.training.core import TrainingCore
    from zoo.training.recipe import TrainConfig

    with pytest.raises(InvalidInput, match="cannot be trained: use the model it was folded from"):
        TrainingCore(folded, TrainConfig(epochs=1, batch_size=4), steps_per_epoch=1)
    assert zoo.fold_batch_norm(folded).zoo_config == folded.zoo_config  # folding twice changes nothing


def test_evaluate_runs_the_folded_model_and_gives_the_eager_numbers():
    model = randomise_batch_norms(zoo.build("abn_resnet20", num_classes=3, **BUILD))
    images, labels = toy_images(20, size=16, num_classes=3)
    metrics = evaluate(model, data.ArraySource(images, labels), batch_size=8, progress=False)
    logits = np.asarray(model(images.astype("float32"), training=False)["logits"])
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    assert metrics["top1"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert metrics["loss"] == pytest.approx(-np.mean(log_p[np.arange(20), labels]), rel=1e-4)
