#!/usr/bin/env bash
# Recipe of the *.cluttered_mnist weights: compact attention models on cluttered translated MNIST
# (60x60 canvas, 4 clutter fragments; scripts/make_cluttered_mnist.py), for the attention-quality
# benchmark (zoo benchmark). Digits are not mirror-symmetric: no flips; crops stay (translation).
# Usage: scripts/train_cluttered_mnist.sh ARCH [zoo train args]
#   ARCH: abn_resnet20 (trained at width 8: --model-arg width=8 is added; add
#         --model-arg attention_mode=multiply for the multiply variant) |
#         ltpa_vgg_att3 (trained at width 0.125 without dropout: --model-arg width=0.125 --model-arg
#         dropout_scale=0 are added; LTPA's first seven convolutions run at full resolution, so on a
#         60x60 canvas width 0.25 costs ~25 min per epoch on a 2-core CPU, and with the paper's
#         dropout at width 0.125 the first epoch stayed at chance, 11.7%) |
#         sfocus_resnet20 (trained at width 8 like ABN: --model-arg width=8 is added; add
#         --objective none for the cross-entropy baseline of the same network; RUN_DIR then apart) |
#         lba_resnet18_w0125 and its baseline plain_stride1_resnet18_w0125 (the 60x60 input strides
#         stage 2 only; LBA's patch-loss weight ramps in over RAMP_EPOCHS, default EPOCHS/2, instead of
#         the official 80 of 200 epochs)
# CLUTTERED names the .npz (default .data/cluttered_mnist60.npz); RUN_DIR where the run goes;
# EPOCHS the epoch count (the shipped weights: 3 for ABN, 8 for LTPA and LBA); PRECISION (default auto:
# bfloat16 on a GPU or a CPU with AVX512_BF16 / AMX, float32 elsewhere; the ABN and Sharpen Focus
# weights were trained with float32, LTPA and LBA with bfloat16: see each card).
set -euo pipefail
ARCH=${1:?usage: scripts/train_cluttered_mnist.sh ARCH [zoo train args]}; shift
DATA=${CLUTTERED:-.data/cluttered_mnist60.npz}
RUN=${RUN_DIR:-$HOME/.cache/attention-zoo/runs/${ARCH}.cluttered_mnist}
EXTRA=()
[[ "$ARCH" == abn_resnet* || "$ARCH" == sfocus_resnet20 ]] && EXTRA=(--model-arg width=8)
[[ "$ARCH" == ltpa_* ]] && EXTRA=(--model-arg width=0.125 --model-arg dropout_scale=0)
[[ "$ARCH" == lba_* ]] && EXTRA=(--loss-schedule "patch_loss_weight={\"start\": 0, \"end\": 0.1, \"epochs\": ${RAMP_EPOCHS:-$((${EPOCHS:-3} / 2))}, \"shape\": \"sigmoid_rampup\", \"per\": \"epoch\"}")
EXTRA+=(--mixed-precision "${PRECISION:-auto}")
exec ${ZOO_TRAIN:-zoo train} "$ARCH" --data "$DATA" --split train --test-split test --image-size 60 60 \
  "${EXTRA[@]}" --epochs ${EPOCHS:-3} --batch-size 128 --lr 0.05 --momentum 0.9 --weight-decay 5e-4 \
  --schedule cosine --crop-padding 4 --no-flip --seed 0 --no-progress \
  --checkpoint-dir "$RUN/checkpoints" --checkpoint-every 200 --output "$RUN/model" "$@"
