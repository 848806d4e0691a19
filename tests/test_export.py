"""SavedModel / TFLite export: uint8 inputs, inference mode, parity with Keras, builtin ops."""

import numpy as np
import pytest
import tensorflow as tf

from zoo import export

# fp32 TFLite and SavedModel agree with Keras to float rounding; float16 weights to ~1e-2.
TOLERANCE = {"saved_model": 1e-5, None: 1e-4, "float16": 5e-2}


@pytest.fixture(scope="module")
def trained_like():
    """A tiny ABN with non-trivial BN statistics (so inference mode matters)."""
    import zoo
    from tests.conftest import TINY

    model = zoo.build("abn_resnet20", num_classes=3, input_shape=(16, 16, 3), **TINY)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    images = rng.integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    return model, images, {k: np.asarray(v) for k, v in model(images.astype("float32"), training=False).items()}


def test_saved_model_serves_uint8_in_inference_mode(trained_like, tmp_path):
    model, images, expected = trained_like
    path = export.export(model, tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))  # keep a reference: its variables die with it
    served = loaded.serve(tf.constant(images))
    assert set(served) == {"logits", "attention_logits", "attention", "probabilities"}
    for key, value in expected.items():
        np.testing.assert_allclose(served[key], value, atol=TOLERANCE["saved_model"])
    np.testing.assert_allclose(np.sum(served["probabilities"], axis=-1), 1.0, atol=1e-5)
    again = loaded.serve(tf.constant(images))
    np.testing.assert_array_equal(served["logits"], again["logits"])  # deterministic
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]  # no temporary leftovers
    with pytest.raises(FileExistsError):
        export.export(model, tmp_path / "sm")


@pytest.mark.parametrize("quantize", [None, "float16"])
def test_tflite_parity_with_builtin_ops_only(trained_like, tmp_path, quantize):
    model, images, expected = trained_like
    path = export.export(model, tmp_path / "m.tflite", "tflite", quantize)
    runner = export.tflite_runner(path)
    out = runner(image=images)
    for key, value in expected.items():
        np.testing.assert_allclose(out[key], value, atol=TOLERANCE[quantize] * max(1.0, np.abs(value).max()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    from ai_edge_litert.interpreter import Interpreter

    ops = {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in ops), ops


def test_only_the_named_outputs_are_exported_and_the_rest_pruned(trained_like, tmp_path):
    from zoo.errors import InvalidInput

    model, images, expected = trained_like
    full = export.export(model, tmp_path / "full.tflite", "tflite")
    path = export.export(model, tmp_path / "m.tflite", "tflite", outputs=("logits", "attention"))
    out = export.tflite_runner(path)(image=images)
    assert set(out) == {"logits", "attention"}
    for key in out:
        scale = max(1.0, np.abs(expected[key]).max())
        np.testing.assert_allclose(out[key], expected[key], atol=TOLERANCE[None] * scale)
    from ai_edge_litert.interpreter import Interpreter

    count = {p: len(Interpreter(model_path=str(p))._get_ops_details()) for p in (full, path)}
    assert count[path] < count[full]  # the attention-branch logits (1x1 conv + mean) are gone
    with pytest.raises(InvalidInput, match="Did you mean: attention"):
        export.export(model, tmp_path / "bad.tflite", "tflite", outputs=("atention",))
    assert not (tmp_path / "bad.tflite").exists()


def test_dynamic_range_quantization_keeps_predictions(trained_like, tmp_path):
    model, images, expected = trained_like
    out = export.tflite_runner(export.export(model, tmp_path / "d.tflite", "tflite", "dynamic"))(image=images)
    assert out["logits"].shape == expected["logits"].shape
    assert np.corrcoef(out["logits"].ravel(), expected["logits"].ravel())[0, 1] > 0.95


def test_bad_arguments(trained_like, tmp_path):
    model = trained_like[0]
    with pytest.raises(ValueError, match="format"):
        export.export(model, tmp_path / "x", "onnx")
    with pytest.raises(ValueError, match="tflite only"):
        export.export(model, tmp_path / "x", "saved_model", "float16")
    assert list(tmp_path.iterdir()) == []


# one architecture of every family and backbone, small, exported through the command line
EXPORTED = {
    "abn_resnet20": {"input_shape": (16, 16, 3), "depth": 8, "width": 4},
    "abn_multitask_faceresnet20": {"num_classes": 3, "width": 4},
    "multichannel_faceresnet20": {"num_classes": 3, "width": 4, "hidden": 2},
    "plain_faceresnet20": {"num_classes": 3, "width": 4},
    "ltpa_vgg_att3": {"width": 0.125},
    "ltpa_vgg16": {"width": 0.125},
    "abn_resnet50": {"input_shape": (32, 32, 3)},  # keras.applications ResNet50 backbone
}


@pytest.mark.parametrize("arch", list(EXPORTED))
def test_every_family_exports_through_the_cli(arch, tmp_path):
    import zoo
    from zoo.cli import main

    model = zoo.build(arch, **{"num_classes": 3, **EXPORTED[arch]})
    names = [f"label{i}" for i in range(model.output["logits"].shape[-1])]
    zoo.save_model(model, tmp_path / "model", class_names=names)
    size = model.input.shape[1:3]
    images = np.random.default_rng(1).integers(0, 256, (2, *size, 3)).astype("uint8")
    expected = {k: np.asarray(v) for k, v in model(images.astype("float32"), training=False).items()}
    assert main(["export", str(tmp_path / "model"), "--format", "tflite", "--output", str(tmp_path / "m.tflite")]) == 0
    out = export.tflite_runner(tmp_path / "m.tflite")(image=images)
    assert export.read_labels(tmp_path / "m.tflite") == names
    assert set(out) == set(expected) | {"probabilities"}
    for key, value in expected.items():
        scale = max(1.0, np.abs(value).max())
        np.testing.assert_allclose(out[key], value, atol=1e-3 * scale, err_msg=f"{arch} tflite {key}")
    if arch == "abn_resnet50":  # its SavedModel is the same graph as the others' (30 s more of the suite)
        return
    assert main(["export", str(tmp_path / "model"), "--output", str(tmp_path / "sm")]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "sm"))  # keep a reference: its variables die with it
    served = loaded.serve(tf.constant(images))
    assert set(served) == set(out)
    for key, value in expected.items():
        scale = max(1.0, np.abs(value).max())
        np.testing.assert_allclose(served[key], value, atol=1e-4 * scale, err_msg=f"{arch} saved_model {key}")


def test_int8_calibrated_on_images_keeps_predictions_and_quantises_activations(trained_like, tmp_path):
    from zoo.errors import InvalidInput

    model, images, expected = trained_like
    with pytest.raises(InvalidInput, match="calibration"):
        export.export(model, tmp_path / "q.tflite", "tflite", "int8")
    with pytest.raises(InvalidInput, match="by quantize='int8' only"):
        export.export(model, tmp_path / "q.tflite", "tflite", "dynamic", calibration=images)
    with pytest.raises(InvalidInput, match="at least 10"):
        export.export(model, tmp_path / "q.tflite", "tflite", "int8", calibration=images)
    calibration = np.random.default_rng(5).integers(0, 256, (32, 16, 16, 3)).astype("uint8")
    path = export.export(model, tmp_path / "q.tflite", "tflite", "int8", calibration=calibration)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.tflite"]
    out = export.tflite_runner(path)(image=images)
    assert out["logits"].dtype == np.float32 and out["logits"].shape == expected["logits"].shape
    assert np.corrcoef(out["logits"].ravel(), expected["logits"].ravel())[0, 1] > 0.9
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path))._get_ops_details()
    convs = [op for op in details if op["op_name"] == "CONV_2D"]
    tensors = {t["index"]: t for t in Interpreter(model_path=str(path)).get_tensor_details()}
    assert convs and all(tensors[op["inputs"][0]]["dtype"] == np.int8 for op in convs)  # activations int8 too


def test_int8_export_through_the_cli_reads_calibration_data(trained_like, tmp_path, capsys):
    import zoo
    from tests.conftest import write_toy_npz
    from zoo.cli import main

    model = trained_like[0]
    zoo.save_model(model, tmp_path / "model", class_names=["a", "b", "c"])
    assert main(["export", str(tmp_path / "model"), "--format", "tflite", "--quantize", "int8",
                 "--output", str(tmp_path / "m.tflite")]) == 2
    assert "--calibration-data" in capsys.readouterr().err and not (tmp_path / "m.tflite").exists()
    data = write_toy_npz(tmp_path / "toy.npz", size=16)
    assert main(["export", str(tmp_path / "model"), "--format", "tflite", "--quantize", "int8", "--calibration-data",
                 str(data), "--calibration-count", "12", "--output", str(tmp_path / "m.tflite")]) == 0
    assert export.tflite_runner(tmp_path / "m.tflite")(image=trained_like[1])["logits"].shape == (4, 3)


def test_a_model_that_does_not_fold_is_exported_unfolded_with_a_warning(tmp_path):
    """A layer that does not rebuild from its config: the export warns and serves the model as
    it is (the same numbers), rather than failing or serving a wrong rebuilt copy."""
    import keras
    from keras import layers

    from tests.test_inference import ForgetfulScale, randomise_batch_norms

    inputs = keras.Input((4, 4, 1))
    x = layers.BatchNormalization(name="bn")(layers.Conv2D(2, 1, name="c")(inputs))
    model = randomise_batch_norms(keras.Model(inputs, {"logits": layers.Flatten()(ForgetfulScale(3.0)(x))}))
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1)).astype("uint8")
    expected = np.asarray(model(images.astype("float32"), training=False)["logits"])
    with pytest.warns(UserWarning, match="exporting .* unfolded: folding the batch norms changed"):
        path = export.export(model, tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(images))["logits"], expected, rtol=1e-5)
