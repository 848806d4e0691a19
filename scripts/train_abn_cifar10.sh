#!/usr/bin/env bash
# Recipe of the shipped abn_resnet20.cifar10 weights (CIFAR-10 JPEG q75 copy, this 2-core CPU).
# Usage: scripts/train_abn_cifar10.sh [DEPTH] [extra zoo train/finetune args, e.g. --resume]
# The official ABN recipe is 300 epochs, step schedule; we fit a CPU budget (see the weights card in
# weights/manifest.json) with two stages:
#   1. 40 epochs, cosine from lr 0.1                      -> $RUN/model
#   2. a warm restart: RESTART_EPOCHS (default 10) more epochs, cosine from lr 0.01, on the stage-1
#      model with its heads kept (`zoo finetune` on the same classes)   -> $RUN/final
# A finished stage is skipped, so the script (with --resume) continues wherever it stopped.
set -euo pipefail
DEPTH=${1:-20}; shift || true
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/abn_resnet${DEPTH}.cifar10}
COMMON=(--data "$DATA" --split train --test-split test --batch-size 128 --momentum 0.9 --weight-decay 5e-4
        --schedule cosine --mixed-precision bfloat16 --checkpoint-every 200)
if [ ! -f "$RUN/model/config.json" ]; then
  zoo train "abn_resnet${DEPTH}" "${COMMON[@]}" --epochs 40 --lr 0.1 --seed 0 \
    --checkpoint-dir "$RUN/checkpoints" --log-dir "$RUN/logs" --output "$RUN/model" "$@"
fi
if [ "${RESTART_EPOCHS:-10}" -gt 0 ]; then
  zoo finetune "$RUN/model" "${COMMON[@]}" --epochs "${RESTART_EPOCHS:-10}" --lr 0.01 --seed 1 \
    --checkpoint-dir "$RUN/restart/checkpoints" --log-dir "$RUN/restart/logs" --output "$RUN/final" "$@"
fi
