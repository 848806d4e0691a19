#!/usr/bin/env bash
# Train on a lent GPU machine (JAX, no TensorFlow) with the backend-agnostic engine (zoo.fit).
#
# Prepare here, once (the device has jax, h5py, rich, absl-py, ml-dtypes, pillow; not keras):
#   mkdir -p .whl .data && cp ../shared/datasets/cifar10-jpeg.npz .data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform any -d .whl keras==3.15.1 namex optree
#   (.whl/ and .data/ are git-ignored; name both in the device tool's `carry`)
# Then run through the device tool, e.g.:
#   scripts/device_train.sh ltpa_vgg_att3 --data .data/cifar10-jpeg.npz --epochs 30 --output $OUT/model ...
# and copy $OUT/model back into a run directory; publish it with scripts/publish_weights.py here.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND=jax
exec python3 -m zoo.cli train "$@" --engine fit
