"""Robustness evaluation for every family and task (``zoo robustness``): accuracy under FGSM,
PGD and Gaussian noise over a grid of strengths. The attacks ascend the model's task loss
(softmax or binary cross-entropy) and the score is the task's accuracy (top-1, or the mean
attribute accuracy). TensorFlow-specific (input gradients with ``tf.GradientTape``), kept out of
the model modules.

Strengths are in pixel units of the [0, 255] input (``epsilon=8`` is the common 8/255 in
[0, 1] units): attacked images are clipped to [0, 255].
- FGSM (Goodfellow et al. 2015): ``x' = x + eps * sign(grad_x CE(logits(x), y))``.
- PGD (Madry et al. 2018), L-infinity: a random start in the eps-ball, then `steps` steps of size
  ``2.5 * eps / steps``, each projected back onto the ball.
- Gaussian noise: ``x' = x + N(0, sigma^2)`` (sigma in pixel units).
"""

import numpy as np
import tensorflow as tf

from zoo import inference, tasks

ATTACKS = ("fgsm", "pgd", "noise")
DEFAULT_EPSILONS = (0, 1, 2, 4, 8)
DEFAULT_SIGMAS = (0, 4, 8, 16, 32)


def input_gradient(model, images, labels):
    """Gradient of the mean task loss of ``logits`` with respect to the input images (eager)."""
    return _loss_gradient(model, tasks.task_of(model), images, labels)


def compiled_input_gradient(model):
    """:func:`input_gradient` of `model` as a compiled TensorFlow graph (``tf.function``, traced
    again only for a new batch shape or label dtype): what :func:`robustness` attacks with (with
    the folded model, 2.05-2.35x faster end to end than the eager tape: README, Robustness)."""
    task = tasks.task_of(model)
    return tf.function(lambda images, labels: _loss_gradient(model, task, images, labels), reduce_retracing=True)


def _loss_gradient(model, task, images, labels):
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = model(images, training=False)["logits"]
        loss = tf.reduce_mean(task.loss(labels, logits))
    return tape.gradient(loss, images)


def fgsm(model, images, labels, epsilon, gradient=None):
    """FGSM; `gradient` (images, labels) -> input gradient, default :func:`input_gradient` of `model`."""
    if epsilon == 0:
        return images
    gradient = gradient or (lambda x, y: input_gradient(model, x, y))
    return tf.clip_by_value(images + epsilon * tf.sign(gradient(images, labels)), 0.0, 255.0)


def pgd(model, images, labels, epsilon, steps=10, seed=0, gradient=None):
    """L-infinity PGD; `gradient` as for :func:`fgsm`."""
    if epsilon == 0:
        return images
    gradient = gradient or (lambda x, y: input_gradient(model, x, y))
    step_size = 2.5 * epsilon / steps
    start = tf.random.stateless_uniform(tf.shape(images), [seed, 0], -epsilon, epsilon)
    adversarial = tf.clip_by_value(images + start, 0.0, 255.0)
    for _ in range(steps):
        adversarial = adversarial + step_size * tf.sign(gradient(adversarial, labels))
        adversarial = tf.clip_by_value(adversarial, images - epsilon, images + epsilon)
        adversarial = tf.clip_by_value(adversarial, 0.0, 255.0)
    return adversarial


def gaussian_noise(images, sigma, seed=0):
    if sigma == 0:
        return images
    noise = tf.random.stateless_normal(tf.shape(images), [seed, 1], stddev=sigma)
    return tf.clip_by_value(images + noise, 0.0, 255.0)


def perturb(model, attack, images, labels, strength, pgd_steps, seed, gradient=None):
    if attack == "fgsm":
        return fgsm(model, images, labels, strength, gradient)
    if attack == "pgd":
        return pgd(model, images, labels, strength, pgd_steps, seed, gradient)
    if attack == "noise":
        return gaussian_noise(images, strength, seed)
    raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")


class Accuracies(dict):
    """``{attack: {strength: accuracy}}`` and ``num_examples``, the number of images measured."""

    def __init__(self, accuracies, num_examples):
        super().__init__(accuracies)
        self.num_examples = num_examples


def robustness(model, data, attacks=ATTACKS, epsilons=DEFAULT_EPSILONS, sigmas=DEFAULT_SIGMAS, pgd_steps=10,
               max_examples=1000, batch_size=250, split="test", seed=0, progress=False, compiled=True):
    """Accuracy of `model` (top-1, or mean attribute accuracy) under each attack and strength, on
    the first `max_examples` images of `data` (anything :func:`zoo.data.open_source` takes);
    `progress` as :class:`zoo.progress.Progress`. The attacks and the scoring run `model` with its
    batch norms folded (:func:`zoo.inference.inference_model`) in compiled graphs, the same
    accuracies as the eager model in a fraction of the time (README, Robustness); ``compiled=False``
    runs `model` eagerly as it is (to debug, and the reference ``scripts/bench_robustness.py``
    measures against).

    Returns :class:`Accuracies`, ``{attack: {strength: accuracy}}`` (noise strengths are the `sigmas`).
    """
    from zoo import data as zdata
    from zoo.hub import model_image_size
    from zoo.progress import Progress

    task = tasks.task_of(model)
    if compiled:
        attacked_model = inference.inference_model(model, "attacking")  # batch norms folded: the same function
        gradient = compiled_input_gradient(attacked_model)
        logits_of = tf.function(lambda x: attacked_model(x, training=False)["logits"], reduce_retracing=True)
    else:  # eager: input_gradient of the model as it is
        attacked_model, gradient = model, None
        logits_of = lambda x: model(x, training=False)["logits"]  # noqa: E731
    source = zdata.open_source(data, split, image_size=model_image_size(model),
                               class_names=tasks.label_names_of(model))
    correct = {a: {s: 0 for s in (sigmas if a == "noise" else epsilons)} for a in attacks}
    count = min(len(source), max_examples)
    runs = sum(len(per) for per in correct.values())  # (attack, strength) pairs
    shown = Progress(-(-count // batch_size) * runs, f"{model.name}: {runs} attacks x strengths on {count} {split} "
                     "images", progress, unit="attacked batch")
    total = 0
    for batch_index, (images, labels) in enumerate(zdata.make_dataset(source, batch_size, training=False)):
        if total >= max_examples:
            break
        keep = min(len(labels), max_examples - total)
        images, labels = images[:keep], labels[:keep]
        for attack, per_strength in correct.items():
            for strength in per_strength:
                attacked = perturb(attacked_model, attack, images, labels, float(strength), pgd_steps,
                                   seed + batch_index, gradient)
                logits = np.asarray(logits_of(attacked))
                per_strength[strength] += float(np.sum(task.correct(logits, np.asarray(labels))))
                shown.advance()
        total += keep
    return Accuracies({a: {s: c / total for s, c in per.items()} for a, per in correct.items()}, total)


def format_table(results_by_model):
    """Markdown table: one row per (attack, strength), one column per model."""
    names = list(results_by_model)
    first = results_by_model[names[0]]
    lines = ["| attack | strength (pixels) | " + " | ".join(names) + " |", "| --- | ---: |" + " ---: |" * len(names)]
    for attack, per_strength in first.items():
        for strength in per_strength:
            cells = " | ".join(f"{results_by_model[n][attack][strength]:.2%}" for n in names)
            lines.append(f"| {attack} | {strength:g} | {cells} |")
    return "\n".join(lines)


def plot_curves(results_by_model, path, force=False, data=None):
    """:func:`curves_figure` saved as PNG; an existing `path` is replaced only with `force`."""
    from zoo.explain.figures import save_figure

    return save_figure(curves_figure(results_by_model, data), path, force, dpi=120)


def curves_figure(results_by_model, data=None):
    """Accuracy (%, 0-100 on every panel) against strength, one panel per attack, one line per
    model, titled with the `data` and the number of images."""
    from zoo.explain.figures import pyplot

    plt = pyplot()
    attacks = list(next(iter(results_by_model.values())))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks), 3.6), squeeze=False, sharey=True)
    for ax, attack in zip(axes[0], attacks):
        for name, results in results_by_model.items():
            strengths = list(results[attack])
            ax.plot(strengths, [100 * results[attack][s] for s in strengths], marker="o", label=name)
        ax.set_title(attack.upper() if attack != "noise" else "Gaussian noise")
        ax.set_xlabel("sigma (pixels)" if attack == "noise" else "epsilon (pixels of 255)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend()
    counts = {getattr(r, "num_examples", None) for r in results_by_model.values()} - {None}
    images = f", {counts.pop()} images" if len(counts) == 1 else ""
    fig.suptitle(f"accuracy under attack{f' on {data}' if data else ''}{images}", fontsize=11)
    fig.tight_layout()
    return fig
