#!/usr/bin/env bash
# The benchmark of docs/results.md, in the order it ran on the shared 2-core machine:
# ET-STPM (default teacher fine-tuning, leakage-free) against plain STPM (--finetune none), same seed (0),
# same data, same everything else. Epochs are cut from the paper's 100 to what fits the time available, in stages
# (each later stage continues the same runs), so that both methods always have the same number of epochs.
set -uo pipefail
cd "$(dirname "$0")/../.."
shared=${ETSTPM_SHARED:-$(cd .. && pwd)/shared}
one=bench/training/run_one.sh
grid=("$shared/data/mvtec_grid_subset" grid)
mtd=("$shared/data/mtd" magnetic_tile)
screw=("$shared/data/mvtec_screw" screw)
cell() { "$one" "$@" || echo "FAILED: $*" >&2; }

stage1() {
  cell grid-stpm   "${grid[@]}" 20 none
  cell grid-etstpm "${grid[@]}" 20 auto
  cell mtd-stpm    "${mtd[@]}"  "${MTD1:-3}" none
  cell mtd-etstpm  "${mtd[@]}"  "${MTD1:-3}" auto
}
stage2() {
  cell mtd-stpm    "${mtd[@]}"  "${MTD2:-5}" none
  cell mtd-etstpm  "${mtd[@]}"  "${MTD2:-5}" auto
}
stage3() {
  cell screw-stpm   "${screw[@]}" "${SCREW:-5}" none
  cell screw-etstpm "${screw[@]}" "${SCREW:-5}" auto
}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(stage1 stage2 stage3)
for s in "${stages[@]}"; do "$s"; done
