#!/usr/bin/env bash
# Recipe of the shipped abn_resnet20.cifar10 weights (CIFAR-10 JPEG q75 copy, this 2-core CPU).
# Usage: scripts/train_abn_cifar10.sh [DEPTH] [extra zoo train args, e.g. --resume]
# The official ABN recipe is 300 epochs, step schedule; we use a 40-epoch cosine schedule that
# fits a CPU budget (see the weights card in weights/manifest.json).
set -euo pipefail
DEPTH=${1:-20}; shift || true
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/abn_resnet${DEPTH}.cifar10}
exec zoo train "abn_resnet${DEPTH}" --data "$DATA" --split train --test-split test \
  --epochs 40 --batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule cosine \
  --mixed-precision bfloat16 --seed 0 \
  --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 --log-dir "$RUN/logs" \
  --output "$RUN/model" "$@"
