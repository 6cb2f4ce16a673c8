"""Anomaly-detection metrics: image AUROC, pixel AUROC and AU-PRO.

All three are exact (no threshold grid): scores are sorted once and every distinct score is a threshold.

AU-PRO follows the MVTec AD definition (Bergmann et al., IJCV 2021, and their reference evaluation code):
- regions are the 8-connected components of each ground-truth mask;
- at a threshold t the PRO is the mean, over ALL regions of ALL images, of the fraction of the region's pixels with
  score >= t (each region weighs the same, whatever its size);
- the false-positive rate counts every normal pixel of every image (good images and the background of defective ones);
- the PRO-vs-FPR curve (starting at (0, 0)) is integrated with the trapezoid rule up to ``fpr_limit`` (the curve is
  linearly interpolated at the limit) and divided by ``fpr_limit``, so a perfect detector scores 1.0.

Anomalous images whose mask is empty (4 'uneven' images of MTD) contribute only normal pixels: to the pixel AUROC
negatives and the PRO false-positive rate, no regions. Images without a mask at all (defect folders without masks)
must be left out of the pixel metrics by the caller (see :func:`evaluate_scores`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

# 3x3 ones: 8-connectivity, as in the MVTec AD evaluation code.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class MetricError(ValueError):
    """Inputs that cannot be scored (shape mismatch, NaN scores, ...)."""


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise MetricError(f"{name}: contains NaN or infinite values")
    return arr


def _as_masks_maps(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    """Returns (bool [N,H,W], float [N,H,W]); accepts [H,W], [N,H,W] or [N,1,H,W] arrays or tensors."""
    masks = _to_numpy(masks)
    maps = _to_numpy(maps)
    if masks.shape != maps.shape:
        raise MetricError(f"masks shape {masks.shape} differs from anomaly maps shape {maps.shape}")
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    elif masks.ndim == 4:
        if masks.shape[1] != 1:
            raise MetricError(f"expected [N,1,H,W] maps, got {masks.shape}")
        masks, maps = masks[:, 0], maps[:, 0]
    elif masks.ndim != 3:
        raise MetricError(f"expected [H,W], [N,H,W] or [N,1,H,W] masks/maps, got {masks.ndim} dimensions")
    maps = maps.astype(np.float32, copy=False)
    if not np.all(np.isfinite(maps)):
        raise MetricError("anomaly maps contain NaN or infinite values")
    return masks > 0.5, maps


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def auroc(labels, scores) -> float | None:
    """Area under the ROC curve = Mann-Whitney U / (n_pos * n_neg); ties count one half.

    Returns None when only one class is present (the AUROC is undefined).
    """
    y = _as_1d(labels, "labels") > 0.5
    s = _as_1d(scores, "scores")
    if y.shape != s.shape:
        raise MetricError(f"{y.size} labels but {s.size} scores")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    # Ranks with ties averaged, computed with one sort (scipy.stats.rankdata would sort twice).
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], s_sorted.size]
    avg_rank = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    group_pos = np.add.reduceat(y[order].astype(np.int64), starts)
    rank_sum = float(np.dot(group_pos, avg_rank))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def image_auroc(labels, scores) -> float | None:
    """Image-level AUROC from per-image labels (1 = defective) and scores; None with a single class."""
    return auroc(labels, scores)


def pixel_auroc(masks, maps) -> float | None:
    """Pixel-level AUROC over all pixels of all given images; None when no pixel (or every pixel) is anomalous."""
    m, a = _as_masks_maps(masks, maps)
    return auroc(m.reshape(-1), a.reshape(-1))


@dataclass
class ProCurve:
    """PRO and FPR at every distinct threshold (descending), starting at (0, 0) and ending at (1, 1)."""

    fpr: np.ndarray
    pro: np.ndarray
    thresholds: np.ndarray
    num_regions: int


def pro_curve(masks, maps) -> ProCurve | None:
    """The PRO-vs-FPR curve (MVTec AD definition); None when there is no region or no normal pixel."""
    m, a = _as_masks_maps(masks, maps)
    # Per-pixel increments: a normal pixel adds 1/num_normal to the FPR once the threshold passes it; a pixel of
    # region r adds 1/(num_regions * |r|) to the PRO.
    pro_weight = np.zeros(m.shape, dtype=np.float64)
    num_regions = 0
    for i in range(m.shape[0]):
        if not m[i].any():
            continue
        labeled, n = ndimage.label(m[i], structure=EIGHT_CONNECTED)
        sizes = np.bincount(labeled.reshape(-1), minlength=n + 1).astype(np.float64)
        inv = np.zeros_like(sizes)
        inv[1:] = 1.0 / sizes[1:]
        pro_weight[i] = inv[labeled]
        num_regions += n
    num_normal = int((~m).sum())
    if num_regions == 0 or num_normal == 0:
        return None
    flat_scores = a.reshape(-1)
    order = np.argsort(flat_scores, kind="stable")[::-1]
    scores_desc = flat_scores[order]
    fpr = np.cumsum((~m).reshape(-1)[order], dtype=np.float64) / num_normal
    pro = np.cumsum(pro_weight.reshape(-1)[order]) / num_regions
    del pro_weight, order
    # A threshold includes every pixel with an equal score: keep the last index of each run of equal scores.
    keep = np.r_[scores_desc[1:] != scores_desc[:-1], True]
    fpr, pro, thr = fpr[keep], pro[keep], scores_desc[keep]
    np.clip(fpr, 0.0, 1.0, out=fpr)
    np.clip(pro, 0.0, 1.0, out=pro)
    return ProCurve(
        fpr=np.r_[0.0, fpr, 1.0],
        pro=np.r_[0.0, pro, 1.0],
        thresholds=np.r_[np.inf, thr, -np.inf],
        num_regions=num_regions,
    )


def area_under_curve(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) for x in [0, x_max]; x non-decreasing; linear interpolation at x_max."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = x <= x_max
    xs, ys = x[inside], y[inside]
    if xs[-1] < x_max:
        nxt = int(np.argmax(~inside))  # first point past the limit
        x0, x1, y0, y1 = x[nxt - 1], x[nxt], y[nxt - 1], y[nxt]
        y_lim = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs, ys = np.r_[xs, x_max], np.r_[ys, y_lim]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def aupro(masks, maps, fpr_limit: float = 0.3) -> float | None:
    """Area under the PRO curve up to ``fpr_limit``, divided by ``fpr_limit``; None without regions."""
    if not 0.0 < fpr_limit <= 1.0:
        raise MetricError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    curve = pro_curve(masks, maps)
    if curve is None:
        return None
    return area_under_curve(curve.fpr, curve.pro, fpr_limit) / fpr_limit


def roc_points(labels, scores, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve at every distinct threshold, from (0, 0) to (1, 1); for plotting.

    ``max_points`` thins a long curve (pixel ROC: millions of thresholds) to about that many points, keeping ends.
    """
    y = _as_1d(labels, "labels") > 0.5
    s = _as_1d(scores, "scores")
    order = np.argsort(s, kind="stable")[::-1]
    s_desc = s[order]
    y_desc = y[order]
    keep = np.r_[s_desc[1:] != s_desc[:-1], True]
    tp = np.cumsum(y_desc)[keep]
    fp = np.cumsum(~y_desc)[keep]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    if max_points is not None and fpr.size > max_points:
        idx = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(np.int64))
        fpr, tpr = fpr[idx], tpr[idx]
    return fpr, tpr


def evaluate_scores(
    labels: Sequence[int],
    defects: Sequence[str],
    scores,
    masks,
    maps,
    has_mask: Sequence[bool],
    fpr_limit: float = 0.3,
) -> dict:
    """All metrics, overall and per defect type (that defect's images against all good images).

    labels/defects/scores/has_mask: one entry per image; masks/maps: [N,H,W] (or [N,1,H,W]).
    Pixel metrics use only images with a mask (good images always count); a value is None (JSON null) when it is
    undefined (no defective image, no mask, no region).
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    defects = np.asarray(list(defects), dtype=object)
    scores = _as_1d(scores, "scores")
    has_mask = np.asarray(has_mask, dtype=bool).reshape(-1)
    m, a = _as_masks_maps(masks, maps)
    n = labels.size
    if not (defects.size == scores.size == has_mask.size == m.shape[0] == n):
        raise MetricError(
            f"length mismatch: {n} labels, {defects.size} defects, {scores.size} scores, "
            f"{has_mask.size} has_mask, {m.shape[0]} maps"
        )
    good = labels == 0

    def block(select: np.ndarray) -> dict:
        pix = select & (has_mask | good)
        with_mask = select & has_mask & ~good
        out = {
            "n_images": int(select.sum()),
            "n_defective": int((select & ~good).sum()),
            "n_with_mask": int(with_mask.sum()),
            "image_auroc": image_auroc(labels[select], scores[select]),
            "pixel_auroc": None,
            "aupro": None,
        }
        if with_mask.any():
            out["pixel_auroc"] = pixel_auroc(m[pix], a[pix])
            out["aupro"] = aupro(m[pix], a[pix], fpr_limit)
        return out

    result = block(np.ones(n, dtype=bool))
    per_defect = {}
    for name in sorted(set(defects[~good].tolist())):
        per_defect[name] = block(good | (defects == name))
    result["per_defect"] = per_defect
    result["fpr_limit"] = fpr_limit
    return result
