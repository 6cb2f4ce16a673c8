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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import MetricError  # defined there; importable from here too

# 3x3 ones: 8-connectivity, as in the MVTec AD evaluation code.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


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
    return _curves_auroc(pixel_curves(masks, maps, with_pro=False))


def _curves_auroc(c: PixelCurves) -> float | None:
    if c.num_positive == 0 or c.num_negative == 0:
        return None
    # Trapezoids over distinct thresholds = Mann-Whitney with ties counted one half.
    return area_under_curve(c.fpr, c.tpr, 1.0)


def _curves_aupro(c: PixelCurves, fpr_limit: float) -> float | None:
    if c.pro is None or c.num_negative == 0:
        return None
    return area_under_curve(c.fpr, c.pro, fpr_limit) / fpr_limit


@dataclass
class PixelCurves:
    """ROC and PRO curves over pixels at every distinct threshold (descending), from (0, 0) to (1, 1).

    ``pro`` is None when there is no ground-truth region; ``tpr`` is meaningless when there is no anomalous pixel.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    pro: np.ndarray | None
    thresholds: np.ndarray
    num_regions: int
    num_positive: int
    num_negative: int


def pixel_curves(masks, maps, with_pro: bool = True) -> PixelCurves:
    """Pixel ROC and PRO (MVTec AD definition) from ONE sort of all pixels: the sort dominates the cost."""
    m, a = _as_masks_maps(masks, maps)
    pro_weight = None
    num_regions = 0
    if with_pro:
        # A pixel of region r adds 1/(num_regions * |r|) to the PRO once the threshold passes its score.
        pro_weight = np.zeros(m.shape, dtype=np.float64)
        for i in range(m.shape[0]):
            if not m[i].any():
                continue
            labeled, n = ndimage.label(m[i], structure=EIGHT_CONNECTED)
            sizes = np.bincount(labeled.reshape(-1), minlength=n + 1).astype(np.float64)
            inv = np.zeros_like(sizes)
            inv[1:] = 1.0 / sizes[1:]
            pro_weight[i] = inv[labeled]
            num_regions += n
    flat = a.reshape(-1)
    order = np.argsort(flat)[::-1]  # descending; stability is irrelevant since ties are merged below
    scores_desc = flat[order]
    negative_desc = ~m.reshape(-1)[order]
    # A threshold includes every pixel with an equal score: keep the last index of each run of equal scores.
    keep = np.r_[scores_desc[1:] != scores_desc[:-1], True]
    fp = np.cumsum(negative_desc, dtype=np.int64)[keep]
    seen = np.flatnonzero(keep) + 1
    tp = seen - fp
    num_negative = int(negative_desc.size - m.sum())
    num_positive = int(flat.size - num_negative)
    pro = None
    if pro_weight is not None and num_regions > 0:
        pro = np.cumsum(pro_weight.reshape(-1)[order])[keep] / num_regions
        np.clip(pro, 0.0, 1.0, out=pro)
        pro = np.r_[0.0, pro, 1.0]
    del pro_weight, order
    fpr = fp / max(num_negative, 1)
    tpr = tp / max(num_positive, 1)
    return PixelCurves(
        fpr=np.r_[0.0, fpr, 1.0],
        tpr=np.r_[0.0, tpr, 1.0],
        pro=pro,
        thresholds=np.r_[np.inf, scores_desc[keep], -np.inf],
        num_regions=num_regions,
        num_positive=num_positive,
        num_negative=num_negative,
    )


def area_under_curve(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) for x in [0, x_max]; x non-decreasing; linear interpolation at x_max."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = x <= x_max
    xs, ys = x[inside], y[inside]
    if xs[-1] < x_max and not inside.all():
        nxt = int(np.argmax(~inside))  # first point past the limit
        x0, x1, y0, y1 = x[nxt - 1], x[nxt], y[nxt - 1], y[nxt]
        y_lim = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs, ys = np.r_[xs, x_max], np.r_[ys, y_lim]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def aupro(masks, maps, fpr_limit: float = 0.3) -> float | None:
    """Area under the PRO curve up to ``fpr_limit``, divided by ``fpr_limit``; None without regions."""
    check_fpr_limit(fpr_limit)
    return _curves_aupro(pixel_curves(masks, maps), fpr_limit)


def check_fpr_limit(fpr_limit: float) -> None:
    if not 0.0 < fpr_limit <= 1.0:
        raise MetricError(f"fpr_limit must be in (0, 1], got {fpr_limit}")


def roc_points(labels, scores, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve at every distinct threshold, from (0, 0) to (1, 1); for plotting.

    ``max_points`` thins a long curve (pixel ROC: millions of thresholds) to about that many points, keeping ends.
    """
    y = _as_1d(labels, "labels") > 0.5
    s = _as_1d(scores, "scores")
    order = np.argsort(s)[::-1]
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
    curves: dict | None = None,
    curve_points: int = 2000,
) -> dict:
    """All metrics, overall and per defect type (that defect's images against all good images).

    labels/defects/scores/has_mask: one entry per image; masks/maps: [N,H,W] (or [N,1,H,W]).
    Pixel metrics use only images with a mask (good images always count); a value is None (JSON null) when it is
    undefined (no defective image, no mask, no region). If ``curves`` is a dict, it receives thinned ROC curves
    (``curves[name] = {"image": (fpr, tpr), "pixel": (fpr, tpr) or None}``, name "overall" or a defect) for plots.
    """
    check_fpr_limit(fpr_limit)
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

    def block(select: np.ndarray, name: str) -> dict:
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
        pixel_roc = None
        if with_mask.any():
            c = pixel_curves(m[pix], a[pix])
            out["pixel_auroc"] = _curves_auroc(c)
            out["aupro"] = _curves_aupro(c, fpr_limit)
            if c.num_positive and c.num_negative:
                idx = np.unique(np.linspace(0, c.fpr.size - 1, curve_points).round().astype(np.int64))
                pixel_roc = (c.fpr[idx], c.tpr[idx])
            del c
        if curves is not None:
            image_roc = roc_points(labels[select], scores[select]) if out["image_auroc"] is not None else None
            curves[name] = {"image": image_roc, "pixel": pixel_roc}
        return out

    result = block(np.ones(n, dtype=bool), "overall")
    per_defect = {}
    for name in sorted(set(defects[~good].tolist())):
        per_defect[name] = block(good | (defects == name), name)
    result["per_defect"] = per_defect
    result["fpr_limit"] = fpr_limit
    return result
