#!/usr/bin/env bash
# Rebuilds models/demo: synthetic line images from the daemon's own generator (the same one behind the
# `synthetic://` demo camera), ET-STPM trained on them with the training toolkit, evaluated, exported.
# Needs: scripts/install-deps.sh all, and ImageNet ResNet-18 weights (WEIGHTS=imagenet downloads them;
# default: ../shared/weights/... where present). Takes about 35 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${WORK:-/tmp/etstpm-demo}"
weights="${WEIGHTS:-$(cd .. && pwd)/shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth}"
epochs="${EPOCHS:-12}"
npm run build --silent
node dist/src/tools/synth-dataset.js --out "$work/synth" --seed 1
.venv/bin/etstpm train --data "$work/synth" --category synthetic_part --weights "$weights" \
  --out "$work/run" --epochs "$epochs" --seed 1 --device cpu
.venv/bin/etstpm evaluate --run "$work/run" --data "$work/synth" --category synthetic_part \
  --json "$work/eval.json" --figures "$work/fig"
.venv/bin/etstpm export --run "$work/run" --out models/demo --metrics "$work/eval.json" --name synthetic_part-etstpm-demo
