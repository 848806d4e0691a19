"""Takes the input gradient, one SmoothGrad sample and one FGSM step of every shipped model at its
own input size, printing one line per model as it starts and ends:
``python -m tests.helpers.input_gradients``. Run in a subprocess by tests/test_weights.py, so a
native crash (oneDNN on some CPUs) fails that test, naming the model, instead of killing pytest."""

import json
import sys

import numpy as np


def main():
    import tensorflow as tf

    import zoo
    from zoo import robustness, tasks, weights
    from zoo.explain import methods

    for name in weights.pretrained_names():
        print(f"start {name}", flush=True)
        model = zoo.load(name)
        shape = weights.manifest_entry(name)["build"]["input_shape"]
        images = np.random.default_rng(0).uniform(0, 255, (4, *shape)).astype("float32")
        targets = np.zeros(4, int)
        gradient = methods.input_gradient(model, images, targets)
        smooth = methods.explain(model, images, ("smoothgrad",), target=targets, samples=2)["smoothgrad"]
        outputs = model(images, training=False)["logits"]
        labels = (np.zeros(4, "int64") if tasks.task_of(model).name == "multiclass"
                  else np.zeros((4, outputs.shape[-1]), "float32"))
        adversarial = robustness.perturb(model, "fgsm", tf.constant(images), tf.constant(labels), 2.0, 1, 0)
        moved = float(np.abs(np.asarray(adversarial) - images).max())
        print(json.dumps({"done": name, "gradient": float(np.abs(gradient).max()),
                          "smoothgrad": float(np.abs(smooth).max()), "fgsm_moved": moved}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
