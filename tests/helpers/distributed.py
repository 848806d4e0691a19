"""Runs a short training in its own process (logical devices and TF_CONFIG must be set before
TensorFlow starts) and prints a JSON summary on the last line.

    python -m tests.helpers.distributed mirrored-parity
    TF_CONFIG=... python -m tests.helpers.distributed multi-worker
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def split_cpu(n=2):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def run(strategy, steps=6, batch_size=16, mixed_precision=None, **build_kwargs):
    import zoo  # noqa: F401
    from tests.conftest import TINY, toy_images
    from zoo.data import ArraySource
    from zoo.training.loop import TrainConfig, Trainer

    images, labels = toy_images(64)
    config = TrainConfig(epochs=10, batch_size=batch_size, lr=0.05, max_steps=steps, progress=False, seed=3,
                         deterministic=True, mixed_precision=mixed_precision)
    trainer = Trainer("abn_resnet20", ArraySource(images, labels), config, strategy=strategy,
                      build_kwargs={"input_shape": (16, 16, 3), **TINY, **build_kwargs})
    history = trainer.fit()
    weights = [np.asarray(v) for v in trainer.model.weights]
    return trainer, history, weights


def main(mode):
    if mode == "mirrored-parity":
        split_cpu(2)
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        trainer, _, w_mirrored = run(mirrored)
        sync_bn = [layer.synchronized for layer in trainer.model.layers if hasattr(layer, "synchronized")]
        variables = trainer.model.trainable_variables
        kinds = sorted({type(v.value if hasattr(v, "value") else v).__name__ for v in variables})
        _, _, w_unsynced = run(mirrored, sync_bn=False)
        _, _, w_single = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(w_mirrored, w_single))
        diff_unsynced = max(float(np.abs(a - b).max()) for a, b in zip(w_unsynced, w_single))
        moved = max(float(np.abs(a).max()) for a in w_single)
        print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "max_abs_diff": diff,
                          "max_abs_diff_unsynced_bn": diff_unsynced, "all_sync_bn": all(sync_bn),
                          "variable_types": kinds, "max_weight": moved}))
    elif mode == "multi-worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _, history, weights = run(strategy, steps=4)
        checksum = float(sum(np.sum(w.astype("float64")) for w in weights))
        print(json.dumps({"checksum": checksum, "loss": history[-1]["train_loss"],
                          "replicas": strategy.num_replicas_in_sync}))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1])
