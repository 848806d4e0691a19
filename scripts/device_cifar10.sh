#!/usr/bin/env bash
# One device-tool call that trains a batch of CIFAR-10 (JPEG copy) recipes side by side on a
# GPU (JAX, zoo.training.fit engine; see scripts/device_train.sh for the one-time preparation), e.g.:
#   device run (carry .whl .data): scripts/device_cifar10.sh ltpa|abn
# Each job is a recipe script run with ZOO_TRAIN=scripts/device_train.sh; every job gets LIMIT
# seconds (a job stopped by it can go on in a next call while the machine is warm: RESUME=1).
# Small models come back as $OUT/NAME.tar (RUN_DIR/model), models over 60 MB as float16 copies
# split into 15 MB parts ($OUT/NAME.f16.weights.h5.partNN: `cat` them, then load with zoo.load).
set -uo pipefail
: "${OUT:?run through the device tool}"
LIMIT=${LIMIT:-550}
export ZOO_TRAIN=scripts/device_train.sh CIFAR10_JPEG=.data/cifar10-jpeg.npz
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
"$ZOO_TRAIN" --setup-only || exit 1
mkdir -p /tmp/runs

job() {  # job NAME [VAR=value ...] RECIPE ARGS...; RESUME=1 continues a run left on a still-warm machine
  local name=$1 start=$SECONDS resume=(); shift
  if [ "${RESUME:-0}" = 1 ] && [ -d "/tmp/runs/$name/checkpoints/backup" ]; then resume=(--resume); else rm -rf "/tmp/runs/$name"; fi
  RUN_DIR=/tmp/runs/$name timeout "$LIMIT" env "$@" "${resume[@]}" >> "/tmp/runs/$name.log" 2>&1
  echo "$name rc=$? $((SECONDS - start)) s"
}

case "${1:?batch: ltpa or abn}" in
  ltpa)  # the session-3 LTPA batch: compact and full-width models, 30-epoch recipe
    job ltpa_vgg_att3_w0.25 scripts/train_ltpa_cifar10.sh ltpa_vgg_att3 0.25 &
    job ltpa_vgg16_w0.25 scripts/train_ltpa_cifar10.sh ltpa_vgg16 0.25 &
    job ltpa_vgg_att3_w1 scripts/train_ltpa_cifar10.sh ltpa_vgg_att3 1 &
    job ltpa_vgg_att2_w1 scripts/train_ltpa_cifar10.sh ltpa_vgg_att2 1 &
    job ltpa_vgg16_w1 scripts/train_ltpa_cifar10.sh ltpa_vgg16 1 & ;;
  abn)  # ABN ResNet-20 for 80 epochs, and a second seed of the compact LTPA pair
    job abn_resnet20_e80 EPOCHS=80 scripts/train_abn_cifar10.sh 20 &
    job ltpa_vgg_att3_w0.25_seed1 scripts/train_ltpa_cifar10.sh ltpa_vgg_att3 0.25 --seed 1 &
    job ltpa_vgg16_w0.25_seed1 scripts/train_ltpa_cifar10.sh ltpa_vgg16 0.25 --seed 1 & ;;
  *) echo "unknown batch $1 (ltpa, abn)"; exit 2 ;;
esac
wait
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(cd /tmp/runs && tar czf "$OUT/logs.tgz" --exclude=backup ./*.log ./*/checkpoints/log.csv ./*/model/config.json 2>/dev/null)
for run in /tmp/runs/*/model; do
  name=$(basename "$(dirname "$run")")
  case "$name" in *seed1) continue ;; esac  # the second-seed runs only report numbers
  if [ "$(stat -c %s "$run/model.weights.h5")" -lt 60000000 ]; then
    tar cf "$OUT/$name.tar" -C "$(dirname "$run")" model
  elif [ "$name" = "${BRING_BIG:-ltpa_vgg_att3_w1}" ]; then
    python3 - "$run/model.weights.h5" "/tmp/$name.f16.weights.h5" <<'PY'
import sys, h5py, numpy as np
src, dst = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "w")
def copy(name, obj):
    if isinstance(obj, h5py.Dataset):
        data = obj[()]
        dst.create_dataset(name, data=data.astype("float16") if data.dtype == np.float32 else data)
    else:
        dst.require_group(name)
    dst[name].attrs.update(dict(obj.attrs))
src.visititems(copy)
dst.attrs.update(dict(src.attrs))
PY
    split -b 15M -d "/tmp/$name.f16.weights.h5" "$OUT/$name.f16.weights.h5.part"
  fi
done
ls -la "$OUT"
