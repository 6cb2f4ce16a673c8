#!/usr/bin/env bash
# Rebuilds models/demo: synthetic line images from the daemon's own generator (the same one behind the
# `synthetic://` demo camera), a memory-bank detector fitted on them with the training toolkit (the toolkit's
# default method), evaluated, exported. The threshold is the toolkit's default calibration: every one of the 1000
# training images scored by a bank fitted without its fold (k-fold), and the order statistic that keeps the
# false-reject rate <= 1 % with 90 % confidence (docs/training.md, "Calibration"); nothing demo-specific.
# Needs: scripts/install-deps.sh all, and ImageNet ResNet-18 weights (WEIGHTS=imagenet downloads them;
# default: ../shared/weights/... where present). Takes about 5 minutes on 2 idle CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${WORK:-/tmp/etstpm-demo}"
weights="${WEIGHTS:-$(cd .. && pwd)/shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth}"
npm run build --silent
rm -rf "$work"
node dist/src/tools/synth-dataset.js --out "$work/synth" --seed 1 --train 1000 --test-good 100 --test-defect 100
.venv/bin/etstpm train --data "$work/synth" --category synthetic_part --weights "$weights" --method membank \
  --out "$work/run" --seed 1 --device cpu
.venv/bin/etstpm evaluate --run "$work/run" --data "$work/synth" --category synthetic_part \
  --json "$work/eval.json" --figures "$work/fig"
.venv/bin/etstpm export --run "$work/run" --out models/demo --metrics "$work/eval.json" --name synthetic_part-membank-demo
