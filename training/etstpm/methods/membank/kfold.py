"""Leave-fold-out calibration scores for a memory bank (docs/training.md, Calibration).

The training images are split into `folds` parts; each part is scored against a bank fitted, by the same procedure
(coreset, PCA width), on the other parts only, so no image's score comes from a bank that holds its own patches, and
every training image serves calibration while the bank that ships is fitted on all of them. The patch features are
the ones extracted for that full bank: each fold costs one coreset selection, no second pass through the backbone.

The fold banks hold (folds - 1) / folds of the patches, so their distances run slightly larger than the full bank's:
the threshold errs towards fewer false rejects (measured against a plain hold-out: docs/results.md, Operating point).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ...backbone import FeatureExtractor
from .fit import MembankConfig, select_bank
from .model import MemoryBankModel

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5


@dataclass
class FoldScores:
    scores: np.ndarray  # [n_images] each image's score against the bank without its fold
    fold: np.ndarray  # [n_images] the fold each image was in
    low: float  # smallest anomaly-map value seen (the normalization's min)
    info: dict


def assign_folds(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold index per image: a seeded permutation dealt round-robin (fold sizes differ by at most one)."""
    if folds < 2:
        raise ValueError(f"k-fold calibration needs at least 2 folds, got {folds}")
    if n < folds:
        raise ValueError(f"{n} training images cannot fill {folds} folds")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % folds
    return fold


@torch.no_grad()
def leave_fold_out_scores(teacher: FeatureExtractor, features: torch.Tensor, n_images: int, image_size: int,
                          cfg: MembankConfig, device: torch.device, seed: int, folds: int = DEFAULT_FOLDS,
                          show_progress: bool = True) -> FoldScores:
    """Scores of every training image against a bank fitted without its fold.

    `features` [n_images * h * w, C]: the training patches in image order (fit_bank(..., keep_features=True)).
    """
    per = features.shape[0] // n_images
    side = math.isqrt(per)
    if per * n_images != features.shape[0] or side * side != per:
        raise ValueError(f"{features.shape[0]} patch rows do not split into {n_images} square patch grids")
    grid = features.view(n_images, side, side, -1)
    fold = assign_folds(n_images, folds, seed)
    scores = np.empty(n_images, dtype=np.float64)
    low = math.inf
    sizes: list[int] = []
    t0 = time.perf_counter()
    for f in tqdm(range(folds), desc="k-fold banks", unit="fold", disable=not show_progress, dynamic_ncols=True):
        inside = np.flatnonzero(fold == f)
        rest = torch.from_numpy(np.flatnonzero(fold != f))
        fitted = select_bank(grid[rest].reshape(-1, grid.shape[-1]), cfg, device, seed, show_progress=False)
        sizes.append(int(fitted.info["bank_size"]))
        model = MemoryBankModel(teacher, fitted.bank, layers=cfg.layers, aggregate=cfg.aggregate, sigma=cfg.sigma,
                                score_top=cfg.score_top, score_border=cfg.score_border,
                                projection=fitted.projection).to(device).eval()
        for s in range(0, inside.size, cfg.batch_size):
            idx = inside[s:s + cfg.batch_size]
            f_img = grid[torch.from_numpy(idx)].permute(0, 3, 1, 2).to(device)
            amap, score = model.from_features(f_img, (image_size, image_size))
            scores[idx] = score.double().cpu().numpy()
            low = min(low, float(amap.min()))
    info = {"folds": folds, "fold_bank_sizes": sizes, "wall_time_s": round(time.perf_counter() - t0, 3)}
    log.info("k-fold calibration scores: %d folds, %d images, %.1f s", folds, n_images, info["wall_time_s"])
    return FoldScores(scores, fold, low, info)
