"""Inference-only rewrites of a trained model (backend-agnostic: keras.layers / keras.ops only).

:func:`fold_batch_norm` merges every batch norm into the convolution before it: in inference a
batch norm is a per-channel affine map, ``y = gamma (z - mean) / sqrt(var + eps) + beta`` (Ioffe &
Szegedy 2015, Alg. 2), and with ``z = W * x + b`` the pair is one convolution with

    W' = W * s,   b' = (b - mean) * s + beta,   s = gamma / sqrt(var + eps)   (per output channel).

The result computes the same outputs (to float32 rounding) with one op fewer per pair; it is for
prediction, evaluation and export, not for training (the batch statistics are gone).
"""

import warnings

import keras
import numpy as np
from keras import layers
from keras.src.models.functional import Functional

from zoo.errors import InvalidInput

FOLDED_KEY = "batch_norm_folded"


@keras.saving.register_keras_serializable(package="attention_zoo")
class FoldedBatchNormalization(layers.Layer):
    """Where a batch norm was folded into the convolution before it: passes its input through.
    It keeps the batch norm's name, so layer taps declared by name (Grad-CAM layers, feature
    extractors) still find the same tensor."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def is_folded(model):
    """Whether `model` came from :func:`fold_batch_norm`."""
    return bool((getattr(model, "zoo_config", None) or {}).get(FOLDED_KEY))


def check_trainable(model, action="train"):
    """Raise a clear error for a model whose batch norms were folded (it cannot be trained or saved
    as a zoo model: its weights no longer match the architecture's)."""
    if is_folded(model):
        raise InvalidInput(f"this model's batch norms were folded into its convolutions for inference "
                           f"(zoo.fold_batch_norm), so it cannot {action}: use the model it was folded from")


def _consumer_counts(model):
    counts = {}
    for operation in model.operations:
        for node in operation._inbound_nodes:
            for tensor in node.input_tensors:
                counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    return counts


def foldable_pairs(model):
    """``{conv layer name: batch norm layer name}`` for each batch norm that can be folded: it is
    called once, on the output of a plain ``Conv2D`` (no activation, called once) that nothing else
    reads, and normalises the channel axis of channels-last data."""
    counts = _consumer_counts(model)
    outputs = {id(t) for t in keras.tree.flatten(model.outputs)}
    pairs = {}
    for bn in model.operations:
        if not isinstance(bn, layers.BatchNormalization) or len(bn._inbound_nodes) != 1:
            continue
        inputs = bn._inbound_nodes[0].input_tensors
        if len(inputs) != 1 or bn.axis not in (-1, 3) or len(inputs[0].shape) != 4:
            continue
        conv = inputs[0]._keras_history[0]
        if (type(conv) is layers.Conv2D and len(conv._inbound_nodes) == 1 and conv.data_format == "channels_last"
                and counts.get(id(inputs[0])) == 1 and id(inputs[0]) not in outputs
                and conv.activation is keras.activations.linear):
            pairs[conv.name] = bn.name
    return pairs


def folded_conv_weights(conv, bn):
    """The kernel and bias of the convolution that computes ``bn(conv(x))`` in inference (float64
    arithmetic, returned in the convolution's variable dtype)."""
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else 0.0
    channels = kernel.shape[-1]
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean, np.float64)
    scale = gamma / np.sqrt(np.asarray(bn.moving_variance, np.float64) + bn.epsilon)
    dtype = keras.backend.standardize_dtype(conv.kernel.dtype)
    return (kernel * scale).astype(dtype), ((bias - mean) * scale + beta).astype(dtype)


def _probe_images(model, count=2, seed=0):
    height, width, channels = (d or 32 for d in model.input.shape[1:])  # not hub.model_image_size: hub imports this
    return np.random.default_rng(seed).uniform(0, 255, (count, height, width, channels)).astype("float32")


def is_16_bit(model):
    return keras.backend.standardize_dtype(model.compute_dtype) in ("bfloat16", "float16")


def check_same_outputs(model, copy, images=None, what="folding the batch norms"):
    """Raise if `copy` does not compute `model`'s outputs on `images` (default: two random
    images) to 1e-3 of each output's largest value."""
    images = _probe_images(model) if images is None else images
    expected, got = model(images, training=False), copy(images, training=False)
    names = list(expected) if isinstance(expected, dict) else range(len(keras.tree.flatten(expected)))
    for name, a, b in zip(names, keras.tree.flatten(expected), keras.tree.flatten(got)):
        a = keras.ops.convert_to_numpy(keras.ops.cast(a, "float32"))
        b = keras.ops.convert_to_numpy(keras.ops.cast(b, "float32"))
        scale, difference = float(np.max(np.abs(a))) + 1e-6, float(np.max(np.abs(a - b)))
        if difference > 1e-3 * scale:
            raise InvalidInput(f"{what} changed the output {name!r} of {model.name} (largest difference "
                               f"{difference:.3g} of {scale:.3g}): a layer does not rebuild "
                               f"from its config; use the model unfolded")


def rebuild(model, fold=True):
    """A copy of the functional `model` rebuilt from its layers' configs with their weights; with
    `fold`, each convolution of :func:`foldable_pairs` absorbs its batch norm, in nested models
    too."""
    pairs = foldable_pairs(model) if fold else {}
    folded_bns = set(pairs.values())

    def clone(layer):
        if layer.name in pairs:
            return layers.Conv2D.from_config({**layer.get_config(), "use_bias": True})
        if layer.name in folded_bns:
            return FoldedBatchNormalization(name=layer.name, dtype=layer.dtype_policy.name)
        if isinstance(layer, Functional):  # a nested model (a keras.applications backbone)
            return rebuild(layer, fold)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights or layer.name in folded_bns or isinstance(layer, Functional):
            continue  # nothing to copy / copied by the nested rebuild
        weights = (folded_conv_weights(layer, model.get_layer(pairs[layer.name])) if layer.name in pairs
                   else layer.get_weights())
        copy.get_layer(layer.name).set_weights(weights)
    return copy


def fold_batch_norm(model, verify=True):
    """A copy of `model` for inference with each batch norm folded into the convolution before it
    (module docstring; also inside nested models; batch norms after anything else stay). The
    same outputs to float32 rounding, fewer ops: 1.06-1.10x faster compiled inference in
    TensorFlow on a 2-core CPU (README, ``scripts/bench_inference.py``). It keeps
    ``zoo_config`` (marked ``batch_norm_folded``) and every layer name, so prediction, explainers
    and export work on it; training or :func:`zoo.save_model` on it are refused.

    `verify` checks on two random images that the copy (rebuilt from each layer's config)
    computes what `model` does, and raises otherwise (:func:`check_same_outputs`): the folded
    copy itself in float32; under a 16-bit policy, where folding moves the rounding (1-2% of
    the logits, as much as bfloat16 itself costs against float32), an unfolded rebuild.
    """
    if not isinstance(model, Functional):
        raise InvalidInput("fold_batch_norm takes a functional Keras model (zoo.build / zoo.load)")
    folded = rebuild(model)
    if hasattr(model, "zoo_config"):
        folded.zoo_config = {**model.zoo_config, FOLDED_KEY: True}
    if verify:
        if is_16_bit(model):
            check_same_outputs(model, rebuild(model, fold=False), what="rebuilding the model from its layers' configs")
        else:
            check_same_outputs(model, folded)
    return folded


def inference_model(model, purpose="running"):
    """`model` with its batch norms folded (:func:`fold_batch_norm`; `model` itself if already
    folded), or `model` unchanged with a warning where a layer does not rebuild from its config:
    what ``zoo evaluate``, ``zoo export`` and ``zoo robustness`` run."""
    if is_folded(model):
        return model
    try:
        return fold_batch_norm(model)
    except InvalidInput as error:
        warnings.warn(f"{purpose} {model.name} unfolded: {error}", stacklevel=3)
        return model
