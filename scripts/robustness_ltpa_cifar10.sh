#!/usr/bin/env bash
# The README's robustness table and plot: the shipped compact LTPA model against the plain VGG
# baseline of the same width and recipe, under FGSM, PGD (L-inf, 10 steps) and Gaussian noise, on
# the first MAX_EXAMPLES (default 1000) test images of the CIFAR-10 JPEG copy.
# Usage: scripts/robustness_ltpa_cifar10.sh [ATTENTION_MODEL] [BASELINE_MODEL]
set -euo pipefail
MODEL=${1:-ltpa_vgg_att3.cifar10_w025}
BASELINE=${2:-ltpa_vgg16.cifar10_w025}
DATA=${CIFAR10_JPEG:-../shared/datasets/cifar10-jpeg.npz}
mkdir -p docs
zoo robustness "$MODEL" --data "$DATA" --compare "$BASELINE" --max-examples "${MAX_EXAMPLES:-1000}" \
  --epsilons 0 1 2 4 8 --sigmas 0 4 8 16 32 --pgd-steps 10 \
  --plot docs/robustness_ltpa_cifar10.png --json docs/robustness_ltpa_cifar10.json --force
