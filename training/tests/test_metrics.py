"""etstpm.metrics against independent computations (scikit-learn, brute force) and hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from etstpm import metrics

# ---------------------------------------------------------------- independent reference implementations

def _components_8(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    """8-connected components by explicit flood fill (no scipy), for the brute-force PRO."""
    seen: set[tuple[int, int]] = set()
    regions = []
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if not mask[y, x] or (y, x) in seen:
                continue
            stack, region = [(y, x)], set()
            seen.add((y, x))
            while stack:
                cy, cx = stack.pop()
                region.add((cy, cx))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and (ny, nx) not in seen:
                            seen.add((ny, nx))
                            stack.append((ny, nx))
            regions.append(region)
    return regions


def _brute_force_aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float) -> float:
    """Loops over every threshold and every region; integrates with an explicit trapezoid loop."""
    regions = [(i, r) for i in range(masks.shape[0]) for r in _components_8(masks[i])]
    normal = ~masks
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.reshape(-1).tolist()), reverse=True):
        above = maps >= t
        fpr = (above & normal).sum() / normal.sum()
        overlaps = [sum(1 for (y, x) in r if above[i, y, x]) / len(r) for i, r in regions]
        points.append((float(fpr), float(np.mean(overlaps))))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:  # cut the last segment at the limit
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


# ---------------------------------------------------------------- AUROC

@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=300)
    scores = rng.integers(0, 20, size=300) + labels * rng.integers(0, 5, size=300)  # many ties
    assert metrics.image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_pixel_auroc_matches_sklearn():
    rng = np.random.default_rng(7)
    masks = rng.random((6, 17, 13)) > 0.8
    maps = rng.random((6, 17, 13)).astype(np.float32) + masks * 0.3
    expected = roc_auc_score(masks.reshape(-1), maps.reshape(-1))
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)
    # [N,1,H,W] layout (what the model returns) gives the same
    assert metrics.pixel_auroc(masks[:, None], maps[:, None]) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(8)
    masks = rng.random((4, 10, 10)) > 0.7
    maps = np.round(rng.random((4, 10, 10)) + masks * 0.2, 1)
    expected = roc_auc_score(masks.reshape(-1), maps.reshape(-1))
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)


def test_auroc_hand_made():
    assert metrics.image_auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.image_auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert metrics.image_auroc([0, 1], [0.5, 0.5]) == 0.5
    # one positive above 8 of 10 negatives (1..10): 0.8
    assert metrics.image_auroc([0] * 10 + [1], list(range(1, 11)) + [8.5]) == pytest.approx(0.8)


def test_auroc_undefined_with_one_class():
    assert metrics.image_auroc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert metrics.pixel_auroc(np.zeros((2, 4, 4)), np.random.default_rng(0).random((2, 4, 4))) is None


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(metrics.MetricError, match="NaN"):
        metrics.image_auroc([0, 1], [0.1, float("nan")])
    with pytest.raises(metrics.MetricError, match="shape"):
        metrics.pixel_auroc(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
    with pytest.raises(metrics.MetricError, match="labels"):
        metrics.image_auroc([0, 1, 1], [0.1, 0.2])


def test_roc_points_match_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=200)
    scores = rng.integers(0, 30, size=200).astype(float)
    fpr, tpr = metrics.roc_points(labels, scores)
    sk_fpr, sk_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    thin_fpr, thin_tpr = metrics.roc_points(labels, scores, max_points=10)
    assert thin_fpr.size <= 10 and thin_fpr[0] == 0 and thin_fpr[-1] == 1 and thin_tpr[-1] == 1


# ---------------------------------------------------------------- AU-PRO

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
def test_aupro_matches_brute_force(seed, fpr_limit):
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, 9, 8), dtype=bool)
    masks[0, 1:3, 1:4] = True          # a block
    masks[0, 6, 6] = True              # a single pixel, separate region
    masks[1, 2, 2] = masks[1, 3, 3] = True  # diagonal neighbours: ONE region under 8-connectivity
    if seed % 2:
        masks[2] = rng.random((9, 8)) > 0.85  # random blobs; image 2 stays empty for even seeds
    maps = rng.random(masks.shape) + masks * rng.random() * 0.8
    if seed >= 3:
        maps = np.round(maps, 1)  # heavy ties
    expected = _brute_force_aupro(masks, maps.astype(np.float32), fpr_limit)
    assert metrics.aupro(masks, maps, fpr_limit) == pytest.approx(expected, abs=1e-9)


def test_aupro_perfect_and_inverted():
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 2:4, 2:5] = True
    masks[1, 6:8, 0:2] = True
    assert metrics.aupro(masks, masks.astype(float)) == pytest.approx(1.0)
    assert metrics.aupro(masks, 1.0 - masks) == pytest.approx(0.0)


def test_aupro_interpolates_at_limit():
    # 10 normal pixels scored 1..10, one region of one pixel scored 8.5: the region is found at FPR 0.2,
    # so the area up to 0.3 is 0.1 -> normalized 1/3. (Its pixel AUROC is 0.8.)
    masks = np.zeros((1, 1, 11), dtype=bool)
    masks[0, 0, 10] = True
    maps = np.array([[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 8.5]]], dtype=np.float32)
    assert metrics.aupro(masks, maps, 0.3) == pytest.approx(1 / 3)
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(0.8)


def test_aupro_all_scores_tied():
    # One threshold takes everything at once: the curve is the diagonal, area 0.3*0.3/2 over 0.3 = 0.15.
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 1, 1] = True
    assert metrics.aupro(masks, np.ones((1, 4, 4)), 0.3) == pytest.approx(0.15)


def test_aupro_uses_8_connectivity_and_weighs_regions_equally():
    # Region A (1 px, high score) and region B (3 px, scored below every normal pixel).
    normal = np.linspace(0.2, 0.8, 25).reshape(5, 5)
    maps = normal.copy()
    masks = np.zeros((5, 5), dtype=bool)
    masks[0, 0] = True
    maps[0, 0] = 1.0
    masks[2:4, 3] = True
    masks[3, 4] = True
    maps[2:4, 3] = maps[3, 4] = 0.0
    # Apart, A is one of two regions -> PRO 0.5 from FPR 0 on, whatever B's size.
    assert metrics.aupro(masks[None], maps[None]) == pytest.approx(0.5)
    # Touching B only diagonally merges them into one 4-pixel region under 8-connectivity -> PRO 1/4.
    masks2, maps2 = masks.copy(), maps.copy()
    masks2[2:4, 3] = masks2[3, 4] = False
    masks2[1, 1] = masks2[2, 2] = masks2[2, 1] = True  # (0,0)-(1,1) touch at a corner
    maps2 = normal.copy()
    maps2[0, 0] = 1.0
    maps2[1, 1] = maps2[2, 2] = maps2[2, 1] = 0.0
    assert metrics.aupro(masks2[None], maps2[None]) == pytest.approx(0.25)


def test_aupro_undefined_without_regions():
    assert metrics.aupro(np.zeros((2, 5, 5)), np.random.default_rng(1).random((2, 5, 5))) is None


# ---------------------------------------------------------------- per-defect evaluation

def test_evaluate_scores_per_defect_and_missing_masks():
    rng = np.random.default_rng(11)
    size = 12
    defects = ["good"] * 4 + ["scratch"] * 3 + ["dent"] * 2 + ["nomask"] * 2
    labels = [0 if d == "good" else 1 for d in defects]
    has_mask = [d != "nomask" for d in defects]
    masks = np.zeros((len(defects), size, size), dtype=bool)
    for i, d in enumerate(defects):
        if d in ("scratch", "dent"):
            y, x = rng.integers(0, size - 3, size=2)
            masks[i, y:y + 3, x:x + 2] = True
    masks[8] = False  # a defective image whose mask is empty: counts for the image AUROC, only negatives in pixels
    maps = rng.random(masks.shape).astype(np.float32) + masks * 0.5
    scores = maps.reshape(len(defects), -1).max(axis=1)
    scores[-2:] += 1.0  # the mask-less defects are detected at image level

    out = metrics.evaluate_scores(labels, defects, scores, masks, maps, has_mask)

    y = np.array(labels)
    assert out["image_auroc"] == pytest.approx(roc_auc_score(y, scores))
    pix = np.array(has_mask)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks[pix].reshape(-1), maps[pix].reshape(-1)))
    assert out["aupro"] == pytest.approx(_brute_force_aupro(masks[pix], maps[pix], 0.3))
    assert set(out["per_defect"]) == {"scratch", "dent", "nomask"}
    sel = np.array([d in ("good", "dent") for d in defects])
    dent = out["per_defect"]["dent"]
    assert dent["n_images"] == 6 and dent["n_defective"] == 2
    assert dent["image_auroc"] == pytest.approx(roc_auc_score(y[sel], scores[sel]))
    assert dent["pixel_auroc"] == pytest.approx(roc_auc_score(masks[sel].reshape(-1), maps[sel].reshape(-1)))
    curves: dict = {}
    again = metrics.evaluate_scores(labels, defects, scores, masks, maps, has_mask, curves=curves)
    assert again == out
    assert set(curves) == {"overall", "scratch", "dent", "nomask"}
    assert curves["nomask"]["pixel"] is None
    fpr, tpr = curves["overall"]["pixel"]
    assert np.trapezoid(tpr, fpr) == pytest.approx(out["pixel_auroc"], abs=1e-3)
    nomask = out["per_defect"]["nomask"]
    assert nomask["image_auroc"] == 1.0
    assert nomask["pixel_auroc"] is None and nomask["aupro"] is None
