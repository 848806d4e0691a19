"""Export to TensorFlow SavedModel and TFLite (``zoo export``), TensorFlow-specific.

The exported graph
- takes images as users have them: ``uint8`` RGB, shape (batch, H, W, 3) (preprocessing is
  inside the model), signature input name ``image``;
- runs the model in inference mode (``training=False``: BN statistics frozen, no augmentation)
  with each batch norm folded into the convolution before it (:mod:`zoo.inference`),
  through ``keras.export.ExportArchive`` (plain ``model.export`` would serve augmentation
  layers in training mode, keras#19108);
- returns ``logits``, ``probabilities`` (the model's task: softmax, or one sigmoid per
  attribute) and every attention output of the model, or only the outputs named in `outputs`
  (``--outputs logits,attention``: what an app does not read is pruned from the graph);
- converts to TFLite with built-in ops only (the conversion fails loudly if a Flex op would be
  needed), optionally with float16, dynamic-range (int8 weights) or full int8 quantisation
  (``int8``: weights and activations, calibrated on the user's images, :func:`calibration_images`;
  input uint8 and outputs float32 as in the other exports, ops without an int8 kernel stay float);
- carries the class (or attribute) names: ``labels.txt`` (one name per line, in output order)
  and ``zoo_config.json``, as associated files packed into the ``.tflite`` file (a zip archive
  appended to the flatbuffer, as TFLite Support's metadata writer packs them: read them with
  ``zipfile.ZipFile(path)``), and in ``assets.extra/`` of a SavedModel.
Both are written to a scratch path and renamed into place, so a failed export leaves nothing
behind, and an existing file or folder is replaced only with ``force=True`` (``--force``).
"""

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import files, inference, tasks
from zoo.data.images import check_images
from zoo.errors import InvalidInput

LABELS_FILE = "labels.txt"
CONFIG_FILE = "zoo_config.json"

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = (None, "float16", "dynamic", "int8")
CALIBRATION_COUNT = 200  # images the int8 converter calibrates activation ranges on


def output_names(model):
    """The names an export can return: the model's outputs and ``probabilities``."""
    return [*model.output_names, "probabilities"] if hasattr(model, "output_names") else ["logits", "probabilities"]


def check_outputs(model, outputs):
    """`outputs` (names, or None for all) checked against the model's (:func:`output_names`)."""
    if outputs is None:
        return None
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    known = output_names(model)
    if not outputs:
        raise InvalidInput(f"outputs is empty: name at least one of {', '.join(known)}")
    for name in outputs:
        if name not in known:
            from zoo.registry import unknown_name_error

            raise unknown_name_error(name, known, "export output")
    return tuple(dict.fromkeys(outputs))


def serving_function(model, outputs=None):
    """uint8 images -> dict of float32 outputs (all, or the names in `outputs`), inference mode."""
    wanted = check_outputs(model, outputs)

    def serve(image):
        result = {k: tf.cast(v, tf.float32) for k, v in model(tf.cast(image, tf.float32), training=False).items()}
        result["probabilities"] = tasks.task_of(model).probabilities(result["logits"])
        return result if wanted is None else {k: result[k] for k in wanted}

    return serve


def input_signature(model):
    height, width, channels = model.input.shape[1:]
    return [tf.TensorSpec((None, height, width, channels), tf.uint8, name="image")]


def write_saved_model(model, directory, outputs=None):
    """The SavedModel of `model` with its batch norms folded into the convolutions
    (:func:`zoo.inference.inference_model`: the same outputs, a faster served graph)."""
    model = inference.inference_model(model, "exporting")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serving_function(model, outputs), input_signature=input_signature(model))
    archive.write_out(str(directory), verbose=False)


def tflite_bytes(saved_model_dir, quantize=None, calibration=None):
    """The TFLite flatbuffer of an exported SavedModel; `calibration` (uint8 images) for ``int8``."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    return converter.convert()


def calibration_images(model, data, split="train", count=CALIBRATION_COUNT):
    """Up to `count` uint8 images of `data` (anything :func:`zoo.data.open_source` takes, or an
    array of images) to calibrate an ``int8`` export on: images like those it will serve."""
    if isinstance(data, np.ndarray):
        images = data
    else:
        from zoo import data as zdata

        size = tuple(model.input.shape[1:3])
        source = zdata.open_source(data, split, **({} if None in size else {"image_size": size}))
        batches = zdata.make_dataset(source, min(count, 256), training=False)
        images = np.concatenate([np.asarray(batch[0]) for batch in batches.take(-(-count // 256))])
    images = check_images(model, images)[:count]
    if len(images) < 10:
        raise InvalidInput(f"int8 calibration needs at least 10 images, got {len(images)}: pass more "
                           "(--calibration-data with the images the model will see)")
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def associated_files(model):
    """``{name: bytes}`` of what travels with an export: the label names and the zoo config."""
    names = tasks.label_names_of(model)
    config = {**(getattr(model, "zoo_config", None) or {}), "class_names": names}
    config = {k: v for k, v in config.items() if k not in ("history", "history_fit", "train_config")}
    return {LABELS_FILE: ("\n".join(names) + "\n").encode(), CONFIG_FILE: json.dumps(config, indent=1).encode()}


def with_packed_files(flatbuffer, packed):
    """The TFLite bytes with `packed` files appended as a zip archive (the interpreter ignores it)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name, data in packed.items():
            zf.writestr(name, data)
    return bytes(flatbuffer) + archive.getvalue()


def read_labels(path):
    """The label names packed into an exported ``.tflite`` file or SavedModel folder."""
    path = Path(path)
    if path.is_dir():
        return (path / "assets.extra" / LABELS_FILE).read_text().splitlines()
    with zipfile.ZipFile(path) as zf:
        return zf.read(LABELS_FILE).decode().splitlines()


def is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


def check_export_target(path, format="saved_model", quantize=None, force=False):
    """Refuse, before any work, an export that cannot be written as asked
    (:func:`zoo.files.check_output`): a TFLite file onto a folder, a SavedModel onto a file or
    onto a folder that holds anything but a SavedModel, an existing export without `force`."""
    if format not in FORMATS:
        raise InvalidInput(f"format must be one of {FORMATS}, got {format!r}")
    if quantize not in QUANTIZATIONS:
        known = ", ".join(map(str, QUANTIZATIONS[1:]))
        raise InvalidInput(f"quantize must be one of {known} (or None for float32), got {quantize!r}")
    if quantize and format != "tflite":
        raise InvalidInput("quantize applies to --format tflite only")
    path = Path(path)
    if format == "tflite" and path.is_dir():
        raise files.OutputRefused(f"{path} is a folder; give the TFLite file's name, e.g. {path / 'model.tflite'}")
    if format == "saved_model":
        return files.check_output(path, force, "folder", replaceable=is_saved_model)
    return files.check_output(path, force, "file")


def export(model, path, format="saved_model", quantize=None, force=False, outputs=None, calibration=None):
    """Export `model` to `path` (a directory for SavedModel, a ``.tflite`` file for TFLite), with
    every output or only those named in `outputs` (e.g. ``("logits", "attention")``).
    ``quantize="int8"`` needs `calibration`: images or data for :func:`calibration_images`.

    An existing export is replaced only with `force`; anything else at `path` is never replaced
    (:func:`check_export_target`).
    """
    path = check_export_target(path, format, quantize, force)
    check_outputs(model, outputs)
    if quantize == "int8":
        if calibration is None:
            raise InvalidInput("int8 quantisation calibrates on images like those the model will serve: pass "
                               "calibration= (--calibration-data DATA), or use quantize='dynamic' (int8 weights only)")
        calibration = calibration_images(model, calibration)
    elif calibration is not None:
        raise InvalidInput("calibration images are used by quantize='int8' only (--quantize int8)")
    scratch = files.scratch_dir(path)
    try:
        write_saved_model(model, scratch / "saved_model", outputs)
        packed = associated_files(model)
        if format == "saved_model":
            extra = scratch / "saved_model" / "assets.extra"
            extra.mkdir()
            for name, data in packed.items():
                (extra / name).write_bytes(data)
            files.replace(scratch / "saved_model", path)
        else:
            flatbuffer = tflite_bytes(scratch / "saved_model", quantize, calibration)
            (scratch / "model.tflite").write_bytes(with_packed_files(flatbuffer, packed))
            files.replace(scratch / "model.tflite", path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def tflite_runner(path, num_threads=None, default_delegates=True):
    """The ``serve`` signature runner of a TFLite file (ai-edge-litert, else tf.lite), using
    `num_threads` CPU threads (default: all cores); ``default_delegates=False`` leaves out TFLite's
    default XNNPACK delegate (its reference kernels alone, for comparison)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - tf.lite is the fallback
        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    options = {} if default_delegates else {
        "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count(), **options)
    return interpreter.get_signature_runner("serve")
