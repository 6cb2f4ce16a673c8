#!/usr/bin/env bash
# The benchmark of docs/results.md, in the order it was run on the 2-core machine (about 2 h of CPU):
# ET-STPM (default teacher fine-tuning, leakage-free) against plain STPM (--finetune none), same seed (0).
# Epochs are cut from the paper's 100 to what fits the time available; every result states its epochs.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${ETSTPM_SHARED:-$(cd .. && pwd)/shared}
one=bench/training/run_one.sh
GRID_EPOCHS=${GRID_EPOCHS:-20} MTD_EPOCHS=${MTD_EPOCHS:-10} SCREW_EPOCHS=${SCREW_EPOCHS:-10}
$one grid-stpm-e$GRID_EPOCHS   "$shared/data/mvtec_grid_subset" grid          "$GRID_EPOCHS" none || echo "FAILED: $one grid-stpm-e$GRID_EPOCHS   "$shared/data/mvtec_grid_subset" grid          "$GRID_EPOCHS" none" >&2
$one grid-etstpm-e$GRID_EPOCHS "$shared/data/mvtec_grid_subset" grid          "$GRID_EPOCHS" auto || echo "FAILED: $one grid-etstpm-e$GRID_EPOCHS "$shared/data/mvtec_grid_subset" grid          "$GRID_EPOCHS" auto" >&2
$one mtd-stpm-e$MTD_EPOCHS     "$shared/data/mtd"               magnetic_tile "$MTD_EPOCHS"  none || echo "FAILED: $one mtd-stpm-e$MTD_EPOCHS     "$shared/data/mtd"               magnetic_tile "$MTD_EPOCHS"  none" >&2
$one mtd-etstpm-e$MTD_EPOCHS   "$shared/data/mtd"               magnetic_tile "$MTD_EPOCHS"  auto || echo "FAILED: $one mtd-etstpm-e$MTD_EPOCHS   "$shared/data/mtd"               magnetic_tile "$MTD_EPOCHS"  auto" >&2
$one screw-stpm-e$SCREW_EPOCHS   "$shared/data/mvtec_screw"     screw         "$SCREW_EPOCHS" none || echo "FAILED: $one screw-stpm-e$SCREW_EPOCHS   "$shared/data/mvtec_screw"     screw         "$SCREW_EPOCHS" none" >&2
$one screw-etstpm-e$SCREW_EPOCHS "$shared/data/mvtec_screw"     screw         "$SCREW_EPOCHS" auto || echo "FAILED: $one screw-etstpm-e$SCREW_EPOCHS "$shared/data/mvtec_screw"     screw         "$SCREW_EPOCHS" auto" >&2
