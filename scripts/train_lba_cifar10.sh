#!/usr/bin/env bash
# Compact loss-based attention against its plain baseline on the CIFAR-10 JPEG copy (issue 18): the
# same stride-free backbone, recipe and seed; the baseline is the backbone + GAP + linear.
# Usage: scripts/train_lba_cifar10.sh ARCH [extra zoo train args, e.g. --resume]
#   ARCH: lba_resnet18_w0125 | plain_stride1_resnet18_w0125 | lba_capsule_resnet18_w0125 | ...
# EPOCHS (default 6). The official recipe is 200 epochs with the patch-loss weight ramped in over 80
# (sigmoid_rampup); a short run ramps it over RAMP_EPOCHS (default EPOCHS/2, the same 0 -> 0.1 shape).
# PRECISION (default auto: bfloat16 on a GPU or a CPU with AVX512_BF16 / AMX, float32 elsewhere).
set -euo pipefail
ARCH=${1:?usage: $0 ARCH [zoo train args]}; shift
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
EPOCHS=${EPOCHS:-6}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/${ARCH}.cifar10}
EXTRA=()
[[ "$ARCH" == lba_* ]] && EXTRA=(--loss-schedule "patch_loss_weight={\"start\": 0, \"end\": 0.1, \"epochs\": ${RAMP_EPOCHS:-$((EPOCHS / 2))}, \"shape\": \"sigmoid_rampup\", \"per\": \"epoch\"}")
EXTRA+=(--mixed-precision "${PRECISION:-auto}")
exec ${ZOO_TRAIN:-zoo train} "$ARCH" --data "$DATA" --split train --test-split test "${EXTRA[@]}" \
  --epochs "$EPOCHS" --batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule cosine \
  --seed 0 --no-progress --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 --log-dir "$RUN/logs" \
  --output "$RUN/model" "$@"
