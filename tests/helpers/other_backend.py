"""Loads a saved zoo model under another Keras backend with TensorFlow unimportable, and
writes its outputs for given images: ``KERAS_BACKEND=jax python -m tests.helpers.other_backend
MODEL_DIR IMAGES.npy OUT.npz``."""

import importlib.abc
import os
import sys

# XLA's CPU compiler at LLVM optimisation level 0: compiling each small program (every weight
# initialiser of a freshly built model, every op of an eager call) dominates these tests, and on a
# 2-core CPU a tiny model's load took 26 s of compiling at the default level, 4.7 s at 0. The level
# changes how fast the compiled code runs, not what it computes (no fast-math either way).
FAST_COMPILE = "--xla_backend_optimization_level=0"


def backend_env(backend="jax"):
    """The environment of a subprocess under another Keras backend, on the CPU, compiling fast."""
    flags = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), FAST_COMPILE) if f)
    return {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    """Model code must not need TensorFlow (the GPU machines have none)."""

    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("TensorFlow is blocked in this process")


def main(model_dir, images_path, out_path):
    sys.meta_path.insert(0, BlockTensorFlow())
    import keras
    import numpy as np

    import zoo

    model = zoo.load(model_dir)
    images = np.load(images_path)
    outputs = {k: keras.ops.convert_to_numpy(v) for k, v in model(images, training=False).items()}
    maps = zoo.attention_maps(model, images)
    np.savez(out_path, backend=keras.backend.backend(), **outputs, **{f"map_{k}": v for k, v in maps.items()})


if __name__ == "__main__":
    main(*sys.argv[1:4])
