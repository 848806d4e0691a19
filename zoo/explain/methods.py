"""Post-hoc explainers for every zoo model and task, next to the models' own attention.

:func:`explain` returns ``{method: (B, H, W)}`` maps at input resolution, min-max normalised to
[0, 1] per image, for a target class or attribute per image (default: the predicted one; for a
multi-label model the most probable attribute). Methods (:data:`METHODS`):

- ``attention``: the model's own declared map (:mod:`zoo.explain.maps`), the target attribute's
  for per-attribute maps;
- ``gradcam``: Grad-CAM (Selvaraju et al., ICCV 2017, Eq. 1-2) on the declared Grad-CAM layer
  (or `layer`): ``ReLU(sum_k alpha_k A^k)``, ``alpha_k`` the spatial mean of ``dS/dA^k``;
- ``gradcam++``: Grad-CAM++ (Chattopadhay et al., WACV 2018, Eq. 19 with the exponential score,
  as tf-keras-vis computes it);
- ``smoothgrad``: SmoothGrad (Smilkov et al., 2017): the mean absolute input gradient over
  noisy copies (noise std ``noise * 255``), maximum over colour channels;
- ``integrated_gradients``: Integrated Gradients (Sundararajan et al., ICML 2017, Eq. 1) from a
  black image, Riemann sum of `steps` points, absolute value summed over colour channels;
- ``occlusion``: the drop of the target score when a grey `patch` x `patch` square slides over
  the image (Zeiler & Fergus, ECCV 2014), averaged where patches overlap.

``S`` is the target's logit (pre-softmax / pre-sigmoid score). Gradients go through
:mod:`zoo.autodiff` (TensorFlow, JAX, PyTorch), the same code that makes Grad-CAM
differentiable inside a train step; Grad-CAM itself (:func:`zoo.gradcam.gradcam_from`) is the
one training objectives back-propagate through.
"""

import numpy as np
from keras import ops

from zoo import autodiff, registry, tasks
from zoo.gradcam import TapGradients, class_score, gradcam_from, gradcam_plus_plus_from  # noqa: F401 (API here too)

METHODS = ("attention", "gradcam", "gradcam++", "smoothgrad", "integrated_gradients", "occlusion")


def method_label(method, attention_map=None):
    """How tables and figures name a method: ``attention (attention_2)`` when a declared map is named."""
    return f"{method} ({attention_map})" if method == "attention" and attention_map else method


def default_targets(model, images, outputs=None):
    """The predicted class (multiclass) or the most probable attribute (multilabel) per image."""
    if outputs is None:
        outputs = model(ops.convert_to_tensor(images), training=False)
    return np.argmax(ops.convert_to_numpy(outputs["logits"]), axis=-1)


def target_indices(model, images, target, outputs=None):
    """Targets as integer indices (B,): None (predicted), an index, a name, or one per image."""
    if target is None:
        return default_targets(model, images, outputs)
    names = tasks.label_names_of(model)
    targets = [target] * len(images) if isinstance(target, (int, str, np.integer)) else list(target)
    if len(targets) != len(images):
        raise ValueError(f"got {len(targets)} targets for {len(images)} images")
    indices = []
    for t in targets:
        if isinstance(t, str):
            if t not in names:
                raise registry.unknown_name_error(t, names, "class or attribute")
            t = names.index(t)
        if not 0 <= int(t) < len(names):
            raise ValueError(f"target {t} is not a class of this model (0..{len(names) - 1})")
        indices.append(int(t))
    return np.asarray(indices)


def layer_gradient(model, images, targets, layer=None):
    """``(features, dS/dfeatures)`` at `layer` (default: the declared Grad-CAM layer), numpy."""
    request = registry.GradientRequest(taps=(("layer", layer or "gradcam"),), classes=("true",))
    out = TapGradients(model, request)(images, ops.convert_to_tensor(np.asarray(targets), "int32"), training=False)
    return ops.convert_to_numpy(out["features/layer"]), ops.convert_to_numpy(out["gradients/layer/true"])


def input_gradient(model, images, targets):
    """``dS/dimages`` (B, H, W, 3), numpy."""
    labels = ops.convert_to_tensor(np.asarray(targets), "int32")
    (gradient,) = autodiff.gradients(lambda x: model(x, training=False), ops.convert_to_tensor(images, "float32"),
                                     [lambda out: class_score(out["logits"], labels)], model.variables)
    return ops.convert_to_numpy(gradient)


def scores_of(model, images, targets, batch_size=64):
    """The target logit of every image (numpy), in batches."""
    result = []
    for start in range(0, len(images), batch_size):
        logits = ops.convert_to_numpy(model(ops.convert_to_tensor(images[start : start + batch_size]),
                                            training=False)["logits"])
        result.append(logits[np.arange(len(logits)), targets[start : start + batch_size]])
    return np.concatenate(result)


def smoothgrad(model, images, targets, samples=16, noise=0.15, seed=0):
    """SmoothGrad: mean |dS/dx| over `samples` copies with N(0, (noise * 255)^2) added."""
    rng = np.random.default_rng(seed)
    total = np.zeros(images.shape, "float32")
    for _ in range(samples):
        noisy = images + rng.normal(0.0, noise * 255.0, images.shape).astype("float32")
        total += np.abs(input_gradient(model, noisy, targets))
    return (total / samples).max(axis=-1)


def integrated_gradients(model, images, targets, steps=32, baseline=0.0):
    """Integrated Gradients from a constant `baseline` image (Eq. 1, midpoint Riemann sum)."""
    start = np.full(images.shape, baseline, "float32")
    total = np.zeros(images.shape, "float32")
    for alpha in (np.arange(steps) + 0.5) / steps:
        total += input_gradient(model, start + alpha * (images - start), targets)
    return np.abs((images - start) * total / steps).sum(axis=-1)


def occlusion(model, images, targets, patch=8, stride=4, fill=127.5, batch_size=64):
    """Score drop when a `patch`-sized square of grey `fill` covers each position (stride `stride`)."""
    count, height, width, _ = images.shape
    base = scores_of(model, images, targets, batch_size)
    drop = np.zeros((count, height, width), "float32")
    covered = np.zeros((height, width), "float32")
    for y in range(0, max(1, height - patch + stride), stride):
        for x in range(0, max(1, width - patch + stride), stride):
            occluded = images.copy()
            occluded[:, y : y + patch, x : x + patch] = fill
            delta = base - scores_of(model, occluded, targets, batch_size)
            drop[:, y : y + patch, x : x + patch] += delta[:, None, None]
            covered[y : y + patch, x : x + patch] += 1
    return drop / np.maximum(covered, 1)


def own_attention(model, images, targets, outputs=None, name=None):
    """The model's declared map `name` (default: its default map, e.g. LTPA's finest level); for a
    per-attribute map, each image's target's."""
    from zoo.explain.maps import attention_maps, default_map

    name = name or default_map(model)
    if name is None:
        raise ValueError(f"{model.name} has no attention maps of its own (a plain baseline): choose post-hoc methods "
                         f"({', '.join(m for m in METHODS if m != 'attention')})")
    tap = registry.feature_info(model).map(name)
    maps = attention_maps(model, images, maps=name, outputs=outputs)
    if tap.kind != "per_attribute":
        return maps[name]
    names = tasks.label_names_of(model)
    return np.stack([maps[f"{name}/{names[t]}"][i] for i, t in enumerate(targets)])


def explain(model, images, methods=("attention", "gradcam"), target=None, layer=None, normalize=True, **options):
    """Maps of `methods` (:data:`METHODS`) for `images` (B, H, W, 3) RGB in [0, 255].

    Args:
        target: None (the prediction), a class / attribute index or name, or one per image.
        layer: the layer Grad-CAM(++) targets (default: the architecture's declared tap).
        normalize: min-max scale each map to [0, 1] (what figures and metrics compare).
        options: per method, e.g. ``attention_map="attention_2"`` (attention: which declared map),
            ``samples=16, noise=0.15`` (smoothgrad), ``steps=32`` (integrated_gradients),
            ``patch=8, stride=4`` (occlusion).

    Returns ``{method: (B, H, W) float32}`` at the input resolution.
    """
    from zoo.data.images import check_images
    from zoo.explain.maps import normalize_maps, upsample

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise registry.unknown_name_error(unknown[0], list(METHODS), "explanation method")
    images = check_images(model, images)  # shape, channels, value range; an empty batch is an error
    outputs = model(ops.convert_to_tensor(images), training=False)
    targets = target_indices(model, images, target, outputs)
    size = images.shape[1:3]
    result = {}
    for method in methods:
        if method == "attention":
            value = own_attention(model, images, targets, outputs, options.get("attention_map"))
        elif method in ("gradcam", "gradcam++"):
            features, gradient = layer_gradient(model, images, targets, layer)
            if method == "gradcam":
                cam = gradcam_from(features, gradient)
            else:
                score = ops.convert_to_numpy(outputs["logits"])[np.arange(len(targets)), targets]
                cam = gradcam_plus_plus_from(features, gradient, ops.convert_to_tensor(score, "float32"))
            value = upsample(ops.expand_dims(cam, -1), size)
        elif method == "smoothgrad":
            value = smoothgrad(model, images, targets, **pick(options, "samples", "noise", "seed"))
        elif method == "integrated_gradients":
            value = integrated_gradients(model, images, targets, **pick(options, "steps", "baseline"))
        else:
            value = occlusion(model, images, targets, **pick(options, "patch", "stride", "fill"))
        value = np.asarray(value, "float32")
        result[method] = normalize_maps(value) if normalize else value
    return result


def pick(options, *names):
    return {k: v for k, v in options.items() if k in names}
