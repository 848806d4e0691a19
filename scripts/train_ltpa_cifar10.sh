#!/usr/bin/env bash
# Recipe for the LTPA weights on the CIFAR-10 JPEG q75 copy, sized for a 2-core CPU.
# Usage: scripts/train_ltpa_cifar10.sh ARCH WIDTH [extra zoo train args, e.g. --resume]
#   ARCH: ltpa_vgg_att2 | ltpa_vgg_att3 | ltpa_vgg16 (the no-attention baseline)
#   WIDTH: channel multiplier (0.25 = the compact CPU variant; 1 = the paper's VGG)
# Same recipe for the attention models and the baseline, so the comparison is fair. It departs
# from the official one (lr 1.0, x0.5 every 25 epochs, 300 epochs, flip only): cosine schedule,
# lr 0.1, crop+flip (SaoYan's PyTorch port uses crop+flip too), and dropout rates x0.5
# (DROPOUT_SCALE; 1 = cifar.torch's rates) for narrow nets on short schedules.
# EPOCHS (default 30: ~3.5 h for ltpa_vgg_att3 at width 0.25 on the 2-core CPU, --resume continues it;
# 5 min on 1x NVIDIA H100 with ZOO_TRAIN=scripts/device_train.sh, see scripts/device_cifar10.sh).
# PRECISION (default auto: bfloat16 on a GPU or a CPU with AVX512_BF16 / AMX, as the shipped weights
# were trained; float32 elsewhere, where emulated bfloat16 trains several times slower).
set -euo pipefail
ARCH=${1:?arch}; WIDTH=${2:?width}; shift 2
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/${ARCH}_w${WIDTH}.cifar10}
exec ${ZOO_TRAIN:-zoo train} "$ARCH" --data "$DATA" --split train --test-split test --model-arg "width=$WIDTH" \
  --model-arg "dropout_scale=${DROPOUT_SCALE:-0.5}" \
  --epochs ${EPOCHS:-30} --batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule cosine \
  --mixed-precision "${PRECISION:-auto}" --seed 0 \
  --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 --log-dir "$RUN/logs" \
  --output "$RUN/model" "$@"
