"""Export to TensorFlow SavedModel and TFLite (``zoo export``), TensorFlow-specific.

The exported graph
- takes images as users have them: ``uint8`` RGB, shape (batch, H, W, 3) (preprocessing is
  inside the model), signature input name ``image``;
- runs the model in inference mode (``training=False``: BN statistics frozen, no augmentation),
  through ``keras.export.ExportArchive`` (plain ``model.export`` would serve augmentation
  layers in training mode, keras#19108);
- returns ``logits``, ``probabilities`` and every attention output of the model;
- converts to TFLite with built-in ops only (the conversion fails loudly if a Flex op would be
  needed), optionally with float16 or dynamic-range quantisation.
Both are written to a temporary path and renamed, so a failed export leaves nothing behind.
"""

import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = (None, "float16", "dynamic")


def serving_function(model):
    """uint8 images -> dict of float32 outputs, model in inference mode."""

    def serve(image):
        outputs = model(tf.cast(image, tf.float32), training=False)
        result = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
        result["probabilities"] = tf.nn.softmax(result["logits"], axis=-1)
        return result

    return serve


def input_signature(model):
    height, width, channels = model.input.shape[1:]
    return [tf.TensorSpec((None, height, width, channels), tf.uint8, name="image")]


def write_saved_model(model, directory):
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serving_function(model), input_signature=input_signature(model))
    archive.write_out(str(directory), verbose=False)


def tflite_bytes(saved_model_dir, quantize=None):
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def export(model, path, format="saved_model", quantize=None):
    """Export `model` to `path` (a directory for SavedModel, a ``.tflite`` file for TFLite)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if quantize and format != "tflite":
        raise ValueError("quantize applies to --format tflite only")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write_saved_model(model, scratch / "saved_model")
        if format == "saved_model":
            if path.exists():
                raise FileExistsError(f"{path} already exists; remove it or choose another output")
            os.replace(scratch / "saved_model", path)
        else:
            (scratch / "model.tflite").write_bytes(tflite_bytes(scratch / "saved_model", quantize))
            os.replace(scratch / "model.tflite", path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def tflite_runner(path, num_threads=None):
    """The ``serve`` signature runner of a TFLite file (ai-edge-litert, else tf.lite), using
    `num_threads` CPU threads (default: all cores)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - tf.lite is the fallback
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count())
    return interpreter.get_signature_runner("serve")
