#!/usr/bin/env bash
# Recipe of the shipped *.celeba64 weights: the attribute models and their plain baseline, one
# recipe for all three, on the 64x64 CelebA subset (4,330 faces; test split: CelebA id % 5 == 0).
# Usage: scripts/train_celeba64.sh ARCH [extra zoo train args, e.g. --resume]
#   ARCH: abn_multitask_faceresnet20 | multichannel_faceresnet20 | plain_faceresnet20
# CELEBA64 names the .npz (keys x, attr, ids, attr_names); RUN_DIR where the run goes.
# Faces are mirror-symmetric for every CelebA attribute, so random flips stay on.
set -euo pipefail
ARCH=${1:?usage: scripts/train_celeba64.sh ARCH [zoo train args]}; shift
DATA=${CELEBA64:-../shared/datasets/celeba-subset-64.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/${ARCH}.celeba64}
exec ${ZOO_TRAIN:-zoo train} "$ARCH" --data "$DATA" --split train --test-split test --image-size 64 64 \
  --epochs ${EPOCHS:-40} --batch-size 64 --lr 0.05 --momentum 0.9 --weight-decay 5e-4 --schedule cosine \
  --crop-padding 4 --seed 0 --no-progress \
  --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 \
  --output "$RUN/model" "$@"
