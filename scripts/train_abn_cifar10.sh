#!/usr/bin/env bash
# Recipe of the shipped abn_resnet20.cifar10 weights (CIFAR-10 JPEG q75 copy).
# Usage: scripts/train_abn_cifar10.sh [DEPTH] [extra zoo train args, e.g. --resume]
# The official ABN recipe is 300 epochs, step schedule; we use an 80-epoch cosine schedule
# (EPOCHS, default 80): 11 min on 1x NVIDIA H100 with the JAX engine (ZOO_TRAIN=scripts/device_train.sh,
# see scripts/device_cifar10.sh), about 5 h on the 2-core CPU (--resume continues an interrupted run).
# 40 epochs gave 87.77% on the 2-core CPU (session 2); 80 epochs are what the shipped card measures.
# PRECISION (default auto: bfloat16 on a GPU or a CPU with AVX512_BF16 / AMX, as the shipped weights
# were trained; float32 elsewhere, where emulated bfloat16 trains several times slower).
set -euo pipefail
DEPTH=${1:-20}; shift || true
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/abn_resnet${DEPTH}.cifar10}
exec ${ZOO_TRAIN:-zoo train} "abn_resnet${DEPTH}" --data "$DATA" --split train --test-split test \
  --epochs ${EPOCHS:-80} --batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule cosine \
  --mixed-precision "${PRECISION:-auto}" --seed 0 \
  --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 --log-dir "$RUN/logs" \
  --output "$RUN/model" "$@"
