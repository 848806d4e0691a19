#!/usr/bin/env bash
# Save the latest checkpoint of a (running or stopped) training run as a zoo model directory,
# without training: `zoo train ... --resume --max-steps <latest checkpoint step>`.
# Usage: scripts/snapshot_run.sh RECIPE_SCRIPT OUTPUT_DIR [recipe args...]
# e.g.   scripts/snapshot_run.sh scripts/train_abn_cifar10.sh /tmp/interim 20
set -euo pipefail
RECIPE=${1:?recipe}; OUT=${2:?output}; shift 2
RUN=${RUN_DIR:?set RUN_DIR to the run directory of the recipe}
LATEST=$(sed -n 's/^model_checkpoint_path: "ckpt-\([0-9]*\)"/\1/p' "$RUN/checkpoints/checkpoint")
export RUN_DIR="$RUN"
exec "$RECIPE" "$@" --resume --max-steps "$LATEST" --output "$OUT" --test-split "" --log-dir "$(mktemp -d)" --no-progress
