#!/usr/bin/env bash
# One benchmark cell: train (or extend) a run, then evaluate it on the category's test set.
#   bench/training/run_one.sh TAG DATA_ROOT CATEGORY EPOCHS FINETUNE [extra `etstpm train` flags...]
# FINETUNE: auto (ET-STPM's default teacher fine-tuning), rotation, or none (plain STPM / ImageNet teacher).
# EPOCHS 0: a method without student epochs (--method membank, given among the extra flags); the result is TAG.json.
# Writes: $RUNS/TAG (run folder, outside the repo), $RUNS/TAG.log (full log),
#         bench/results/TAG-eEPOCHS.json, $RUNS/figures/TAG-eEPOCHS/{maps,roc}.png, and a copy of roc.png in
#         bench/results/figures/TAG-eEPOCHS/ (maps.png shows dataset images: their licenses keep it out of the repo).
# If $RUNS/TAG already holds a finished run with fewer epochs, it is continued (`--resume --epochs EPOCHS`):
# with --lr-schedule constant this equals training EPOCHS from the start; with the default cosine schedule the
# remaining decay is stretched over the new length (docs/training.md).
# Env: RUNS (default /work/runs), WEIGHTS (default <shared>/weights/...bnfolded...pth), SEED (default 0),
#      THREADS (etstpm --threads; unset = torch's default; 1 on a shared machine, docs/results.md, Operating point).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=$1 root=$2 category=$3 epochs=$4 finetune=$5
shift 5
runs=${RUNS:-/work/runs}
shared=${ETSTPM_SHARED:-$(cd .. && pwd)/shared}
weights=${WEIGHTS:-$shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth}
seed=${SEED:-0}
py=.venv/bin/python
threads=()
if [ -n "${THREADS:-}" ]; then threads=(--threads "$THREADS"); fi
run="$runs/$tag"
log="$runs/$tag.log"
mkdir -p "$runs/figures" bench/results/figures
stamp() { echo "[$(date -u +%FT%TZ)] $tag: $*" | tee -a "$log"; }
done_epochs=-1
if [ -e "$run/student.pt" ] || [ -e "$run/bank.pt" ]; then
  done_epochs=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["epochs_done"])' "$run/run.json")
fi
name="$tag-e$epochs"
train=("$py" -m etstpm.cli "${threads[@]}" train --data "$root" --category "$category" --weights "$weights" --out "$run"
       --finetune "$finetune" --seed "$seed" --no-progress)
if [ "$epochs" = 0 ]; then name=$tag; else train+=(--epochs "$epochs" --method stpm); fi
train+=("$@")
if [ "$done_epochs" -ge "$epochs" ]; then
  stamp "already trained ($done_epochs epochs), evaluating only"
elif [ "$done_epochs" -gt 0 ] && [ "$epochs" != 0 ]; then
  stamp "continue from $done_epochs to $epochs epochs: ${train[*]} --resume"
  nice -n 10 "${train[@]}" --resume >>"$log" 2>&1
else
  rm -rf "${run:?}"
  stamp "train: ${train[*]}"
  nice -n 10 "${train[@]}" >>"$log" 2>&1
fi
eval_cmd=("$py" -m etstpm.cli "${threads[@]}" evaluate --run "$run" --data "$root" --category "$category"
          --json "bench/results/$name.json" --figures "$runs/figures/$name" --no-progress)
stamp "evaluate: ${eval_cmd[*]}"
nice -n 10 "${eval_cmd[@]}" >>"$log" 2>&1
mkdir -p "bench/results/figures/$name"
cp "$runs/figures/$name/roc.png" "bench/results/figures/$name/roc.png"
stamp "done"
