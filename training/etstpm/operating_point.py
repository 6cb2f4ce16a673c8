"""Operating-point metrics: what a line running at one threshold sees (docs/training.md, Evaluation).

- detection at a false-reject rate: the threshold that rejects at most floor(frr x n_good) of the test's good
  images, and the share of defective images it rejects. A rate is resolvable only when the test has at least
  ceil(1 / frr) good images (100 for 1 %, 1,000 for 0.1 %); below that the point is reported as not resolvable
  (detection null), never extrapolated. Detection at zero false rejects is always given.
- the false-reject rate at the calibrated threshold against the calibration's target and guaranteed bound, with the
  binomial probability of seeing that many false rejects or more if the true rate were exactly the bound.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

FRR_POINTS = (0.01, 0.001)  # the rates every evaluation reports
CONSISTENT_P = 0.05  # a test count with P(X >= count | bound) below this says the bound did not hold


def goods_needed(frr: float) -> int:
    return math.ceil(1.0 / frr - 1e-9)


def detection_at_frr(labels: np.ndarray, scores: np.ndarray, frr: float) -> dict:
    """Detection rate at the threshold allowing floor(frr x n_good) false rejects on the test's good images."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    good, bad = scores[labels == 0], scores[labels != 0]
    n = int(good.size)
    allowed = int(math.floor(frr * n + 1e-9))
    out = {"frr": frr, "n_good": n, "n_defective": int(bad.size), "goods_needed": goods_needed(frr),
           "resolvable": allowed >= 1, "allowed_false_rejects": allowed}
    if n == 0 or bad.size == 0:
        return out | {"resolvable": False, "threshold": None, "false_rejects": None, "false_reject_rate": None,
                      "detected": None, "detection_rate": None}
    # ng iff score > the (allowed + 1)-th largest good score; ties with it count as not rejected on both sides.
    edge = float(np.sort(good)[::-1][min(allowed, n - 1)])
    fr = int((good > edge).sum())
    det = int((bad > edge).sum())
    res = out["resolvable"]
    return out | {"threshold": edge, "false_rejects": fr, "false_reject_rate": fr / n,
                  "detected": det if res else None, "detection_rate": det / bad.size if res else None}


def detection_at_zero_false_rejects(labels: np.ndarray, scores: np.ndarray) -> dict:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    good, bad = scores[labels == 0], scores[labels != 0]
    if good.size == 0 or bad.size == 0:
        return {"n_good": int(good.size), "n_defective": int(bad.size), "detected": None, "detection_rate": None}
    det = int((bad > good.max()).sum())
    return {"n_good": int(good.size), "n_defective": int(bad.size), "threshold": float(good.max()), "detected": det,
            "detection_rate": det / bad.size}


def operating_points(labels: np.ndarray, scores: np.ndarray) -> dict:
    return {"at_frr": {f"{f:g}": detection_at_frr(labels, scores, f) for f in FRR_POINTS},
            "at_zero_false_rejects": detection_at_zero_false_rejects(labels, scores)}


def frr_against_bound(false_rejects: int, n_good: int, target: float | None, bound: float | None) -> dict:
    """The test's false-reject count against the calibration's target and bound."""
    out: dict = {"frr_target": target, "frr_bound": bound}
    for name, rate in (("target", target), ("bound", bound)):
        if rate is None or n_good == 0:
            out[f"p_at_{name}"] = None
            continue
        # P(X >= false_rejects) for X ~ Binomial(n_good, rate): small = more false rejects than that rate explains.
        out[f"p_at_{name}"] = float(stats.binom.sf(false_rejects - 1, n_good, rate))
    p = out["p_at_bound"]
    out["consistent_with_bound"] = None if p is None else bool(p >= CONSISTENT_P)
    return out
