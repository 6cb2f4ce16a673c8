#!/usr/bin/env bash
# Rebuilds models/demo: synthetic line images from the daemon's own generator (the same one behind the
# `synthetic://` demo camera), a memory-bank detector fitted on them with the training toolkit (the toolkit's
# default method), evaluated, exported. The threshold comes from 100 held-out good images (--holdout 0.2 of 500).
# Needs: scripts/install-deps.sh all, and ImageNet ResNet-18 weights (WEIGHTS=imagenet downloads them;
# default: ../shared/weights/... where present). Takes a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${WORK:-/tmp/etstpm-demo}"
weights="${WEIGHTS:-$(cd .. && pwd)/shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth}"
frr="${FRR:-0.01}"
npm run build --silent
rm -rf "$work"
node dist/src/tools/synth-dataset.js --out "$work/synth" --seed 1 --train 500 --test-good 100 --test-defect 100
.venv/bin/etstpm train --data "$work/synth" --category synthetic_part --weights "$weights" --method membank \
  --out "$work/run" --holdout 0.2 --frr "$frr" --seed 1 --device cpu
.venv/bin/etstpm evaluate --run "$work/run" --data "$work/synth" --category synthetic_part \
  --json "$work/eval.json" --figures "$work/fig"
.venv/bin/etstpm export --run "$work/run" --out models/demo --metrics "$work/eval.json" --name synthetic_part-membank-demo
