"""One Sharpen Focus training step of a tiny ``sfocus_resnet20`` from given weights on a given
batch, for engine and backend parity: ``KERAS_BACKEND=jax python -m tests.helpers.sfocus_step
START.weights.h5 BATCH.npz OUT.npz`` (TensorFlow blocked) writes the epoch's losses and the weights."""

import sys

import numpy as np

BUILD = {"num_classes": 2, "input_shape": (16, 16, 3)}
# omega 10 instead of 100: the steep mask would amplify the backends' last-digit differences in the
# features into the update (the parity is of the code, not of float rounding)
LOSS_KWARGS = {"omega": 10.0}


def config(**overrides):
    from zoo.data import AugmentConfig
    from zoo.training.recipe import TrainConfig

    return TrainConfig(**{"epochs": 1, "batch_size": 16, "max_steps": 1, "lr": 0.1, "momentum": 0.9,
                          "weight_decay": 5e-4, "progress": False, "seed": 3,
                          "augment": AugmentConfig(crop_padding=0, flip=False), "loss_kwargs": LOSS_KWARGS,
                          **overrides})


def factory(weights):
    import zoo

    def make():
        model = zoo.build("sfocus_resnet20", **BUILD)
        model.load_weights(str(weights))
        return model
    return make


def one_step(weights, images, labels, engine="fit", **overrides):
    """``(losses of the step {name: value}, weights after it [numpy])`` with either engine."""
    import keras

    from zoo.data import ArraySource

    source = ArraySource(images, labels, ["a", "b"])
    if engine == "loop":
        from zoo.training.loop import Trainer

        trainer = Trainer(factory(weights), source, config(**overrides))
        record = trainer.fit()[-1]
        losses = {k.removeprefix("train_"): v for k, v in record.items() if k.startswith("train_")}
        model = trainer.model
    else:
        from zoo.training.fit import fit

        model, history = fit(factory(weights), source, config(**overrides))
        losses = {k: v[-1] for k, v in history.items() if k != "epoch_seconds"}
    return losses, [keras.ops.convert_to_numpy(w) for w in model.weights]


if __name__ == "__main__":
    from tests.helpers.other_backend import BlockTensorFlow

    sys.meta_path.insert(0, BlockTensorFlow())
    import json

    import keras

    weights_path, batch_path, out_path = sys.argv[1:4]
    batch = np.load(batch_path)
    losses, weights = one_step(weights_path, batch["images"], batch["labels"])
    np.savez(out_path, *weights, losses=json.dumps(losses), backend=keras.backend.backend())
