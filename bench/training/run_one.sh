#!/usr/bin/env bash
# One benchmark cell: train a run, then evaluate it on the category's test set.
#   bench/training/run_one.sh TAG DATA_ROOT CATEGORY EPOCHS FINETUNE [extra `etstpm train` flags...]
# Writes: $RUNS/TAG (run folder, outside the repo), bench/results/TAG.json, bench/results/figures/TAG/*.png,
#         $RUNS/TAG.log (full log). FINETUNE: auto (ET-STPM default) or none (plain STPM).
# Env: RUNS (default /work/runs), WEIGHTS (default ../shared/weights/...bnfolded...pth), SEED (default 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=$1 root=$2 category=$3 epochs=$4 finetune=$5
shift 5
runs=${RUNS:-/work/runs}
shared=${ETSTPM_SHARED:-$(cd .. && pwd)/shared}
weights=${WEIGHTS:-$shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth}
seed=${SEED:-0}
py=.venv/bin/python
mkdir -p "$runs" bench/results/figures
log="$runs/$tag.log"
if [ -e "$runs/$tag/student.pt" ]; then
  echo "[$(date -u +%FT%TZ)] $tag: already trained, evaluating only" | tee -a "$log"
else
  rm -rf "${runs:?}/$tag"
  echo "[$(date -u +%FT%TZ)] $tag: train" | tee -a "$log"
  set -x
  nice -n 10 $py -m etstpm.cli train --data "$root" --category "$category" --weights "$weights" \
    --out "$runs/$tag" --epochs "$epochs" --finetune "$finetune" --seed "$seed" --no-progress "$@" >>"$log" 2>&1
  set +x
fi
echo "[$(date -u +%FT%TZ)] $tag: evaluate" | tee -a "$log"
set -x
nice -n 10 $py -m etstpm.cli evaluate --run "$runs/$tag" --data "$root" --category "$category" \
  --json "bench/results/$tag.json" --figures "bench/results/figures/$tag" --no-progress >>"$log" 2>&1
set +x
echo "[$(date -u +%FT%TZ)] $tag: done" | tee -a "$log"
