"""One training step of a tiny zoo model from given weights on a given batch, for engine and
backend parity: ``KERAS_BACKEND=jax python -m tests.helpers.train_step CASE START.weights.h5
BATCH.npz OUT.npz`` (TensorFlow blocked) writes the epoch's losses and the weights after the step.
A case (:data:`CASES`) names the architecture, its build and its loss arguments."""

import sys

import numpy as np

CASES = {
    # omega 10 instead of 100: the steep mask would amplify the backends' last-digit differences in the
    # features into the update (the parity is of the code, not of float rounding)
    "sfocus": {"arch": "sfocus_resnet20", "build": {"num_classes": 2, "input_shape": (16, 16, 3)},
               "loss_kwargs": {"omega": 10.0}},
    # a constant patch-loss weight: the architecture's ramp is 0 in the first epoch
    "lba": {"arch": "lba_capsule_resnet18", "build": {"num_classes": 2, "input_shape": (16, 16, 3), "width": 0.0625,
                                                      "kernel_size": 5, "stride": 2},
            "loss_kwargs": {"patch_loss_weight": 0.1}},
}


def build(case):
    import zoo

    return zoo.build(CASES[case]["arch"], **CASES[case]["build"])


def config(case, **overrides):
    from zoo.data import AugmentConfig
    from zoo.training.recipe import TrainConfig

    return TrainConfig(**{"epochs": 1, "batch_size": 16, "max_steps": 1, "lr": 0.1, "momentum": 0.9,
                          "weight_decay": 5e-4, "progress": False, "seed": 3,
                          "augment": AugmentConfig(crop_padding=0, flip=False),
                          "loss_kwargs": CASES[case]["loss_kwargs"], **overrides})


def factory(case, weights):
    def make():
        model = build(case)
        model.load_weights(str(weights))
        return model
    return make


def one_step(case, weights, images, labels, engine="fit", **overrides):
    """``(losses of the step {name: value}, weights after it [numpy])`` with either engine."""
    import keras

    from zoo.data import ArraySource

    source = ArraySource(images, labels, ["a", "b"])
    if engine == "loop":
        from zoo.training.loop import Trainer

        trainer = Trainer(factory(case, weights), source, config(case, **overrides))
        record = trainer.fit()[-1]
        losses = {k.removeprefix("train_"): v for k, v in record.items() if k.startswith("train_")}
        model = trainer.model
    else:
        from zoo.training.fit import fit

        model, history = fit(factory(case, weights), source, config(case, **overrides))
        losses = {k: v[-1] for k, v in history.items() if k != "epoch_seconds"}
    return losses, [keras.ops.convert_to_numpy(w) for w in model.weights]


def largest_update_difference(weights, reference, start):
    """The largest difference between two updated weight lists, as a fraction of the reference
    step's size (per weight, the max over its entries)."""
    worst = 0.0
    for after, expected, before in zip(weights, reference, (np.asarray(w) for w in start)):
        step = np.abs(expected - before).max()
        worst = max(worst, float(np.abs(after - expected).max() / max(step, 1e-7)))
    return worst


def run_other_backend(case, start, batch, out, backend="jax"):
    """The step under `backend` in a subprocess (TensorFlow blocked): ``(losses, weights, backend)``."""
    import json
    import subprocess
    from pathlib import Path

    from tests.helpers.other_backend import backend_env

    env = backend_env(backend)
    result = subprocess.run([sys.executable, "-m", "tests.helpers.train_step", case, str(start), str(batch), str(out)],
                            cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    count = len([k for k in saved.files if k.startswith("arr_")])
    return json.loads(str(saved["losses"])), [saved[f"arr_{i}"] for i in range(count)], str(saved["backend"])


if __name__ == "__main__":
    from tests.helpers.other_backend import BlockTensorFlow

    sys.meta_path.insert(0, BlockTensorFlow())
    import json

    import keras

    case_name, weights_path, batch_path, out_path = sys.argv[1:5]
    batch = np.load(batch_path)
    losses, weights = one_step(case_name, weights_path, batch["images"], batch["labels"])
    np.savez(out_path, *weights, losses=json.dumps(losses), backend=keras.backend.backend())
