#!/usr/bin/env bash
# `zoo train` on a GPU machine (JAX, no TensorFlow), with the backend-agnostic engine (zoo.training.fit).
#
# Prepare here, once (the device has jax, h5py, ml-dtypes, pillow; not keras, namex, optree):
#   mkdir -p .whl .data && cp ../shared/datasets/cifar10-jpeg.npz .data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl keras==3.15.1 namex optree
#   (.whl/ and .data/ are git-ignored; name both in the device tool's `carry`)
# Then, through the device tool, any recipe with ZOO_TRAIN pointing here, e.g.:
#   ZOO_TRAIN=scripts/device_train.sh CIFAR10_JPEG=.data/cifar10-jpeg.npz RUN_DIR=/tmp/abn EPOCHS=80 \
#       scripts/train_abn_cifar10.sh 20
# copy RUN_DIR/model to $OUT, bring it back, and publish it here with scripts/publish_weights.py.
set -euo pipefail
if [ ! -d /tmp/site/keras ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
fi
[ "${1:-}" = --setup-only ] && exit 0  # install once before starting several runs side by side
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND=jax
exec python3 -m zoo.cli train "$@" --engine fit --no-progress
