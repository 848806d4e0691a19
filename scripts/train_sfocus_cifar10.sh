#!/usr/bin/env bash
# Sharpen Focus against cross-entropy alone on the CIFAR-10 JPEG copy: the same network, recipe and
# seed, only the objective differs (issue 17).
# Usage: scripts/train_sfocus_cifar10.sh sharpen_focus|none [extra zoo train args, e.g. --resume]
# ARCH (default sfocus_resnet20; sfocus_resnet18 is the ports' network, 14x the FLOPs), EPOCHS (30).
# Then: python scripts/sfocus_separability.py RUN/model... --data cifar10-jpeg.npz
set -euo pipefail
OBJECTIVE=${1:?usage: $0 sharpen_focus|none [zoo train args]}; shift
ARCH=${ARCH:-sfocus_resnet20}
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/${ARCH}.${OBJECTIVE}.cifar10}
exec ${ZOO_TRAIN:-zoo train} "$ARCH" --objective "$OBJECTIVE" --data "$DATA" --split train --test-split test \
  --epochs ${EPOCHS:-30} --batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule cosine \
  --seed 0 --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 --log-dir "$RUN/logs" \
  --output "$RUN/model" "$@"
