"""Thresholds with a stated false-reject guarantee, from the scores of n good images (docs/training.md, Calibration).

Order statistic (the "training-conditional" or PAC form of split conformal prediction; Vovk 2012, Bates, Angelopoulos,
Lei, Malik & Jordan 2021): with n good calibration scores S_1..S_n, exchangeable with a new good part's score S, and
the threshold T = S_(k), the k-th smallest, the false-reject rate FRR = P(S >= T | calibration) of the line is a
random variable with P(FRR > alpha) = P(Binomial(n, 1 - alpha) >= k) for continuous scores (1 - FRR = F(S_(k)) is
Beta(k, n + 1 - k)). The smallest k with that probability <= delta gives FRR <= alpha with confidence 1 - delta.

Marginal form (what split conformal usually states): k = ceil((n + 1)(1 - alpha)) gives E[FRR] <= alpha, averaged
over calibration sets; it needs fewer images (n >= 1/alpha - 1) but says nothing about one calibration set.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

METHOD = "order-statistic"


def images_needed(alpha: float, delta: float) -> int:
    """Smallest n for which the maximum (k = n) already meets FRR <= alpha with confidence 1 - delta:
    (1 - alpha)^n <= delta."""
    _check(alpha, delta)
    n = max(1, math.ceil(math.log(delta) / math.log1p(-alpha)))
    while n > 1 and (1.0 - alpha) ** (n - 1) <= delta:  # guard the float rounding of the ratio
        n -= 1
    while (1.0 - alpha) ** n > delta:
        n += 1
    return n


def violation_probability(n: int, k: int, alpha: float) -> float:
    """P(FRR > alpha) for T = the k-th smallest of n scores: P(Binomial(n, 1 - alpha) >= k)."""
    return float(stats.binom.sf(k - 1, n, 1.0 - alpha))


def order_statistic_k(n: int, alpha: float, delta: float) -> int | None:
    """Smallest k in 1..n with P(FRR > alpha) <= delta; None when even k = n (the maximum) does not reach it."""
    _check(alpha, delta)
    if n < 1:
        return None
    # sf(k - 1) falls as k grows: the first k past the (1 - delta) quantile of Binomial(n, 1 - alpha).
    k = int(stats.binom.ppf(1.0 - delta, n, 1.0 - alpha)) + 1
    k = max(1, k - 2)
    while k <= n and violation_probability(n, k, alpha) > delta:
        k += 1
    return k if k <= n else None


def frr_bound(n: int, k: int, delta: float) -> float:
    """The FRR that T = the k-th smallest of n scores keeps with confidence 1 - delta: 1 - (delta quantile of
    Beta(k, n + 1 - k)); for k = n this is 1 - delta^(1/n)."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    return float(1.0 - stats.beta.ppf(delta, k, n + 1 - k))


def marginal_k(n: int, alpha: float) -> int | None:
    """k = ceil((n + 1)(1 - alpha)) (E[FRR] <= alpha); None when it exceeds n."""
    k = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
    return k if k <= n else None


@dataclass
class Guarantee:
    """What a threshold promises; stored in run.json and model.json (docs/model-format.md, threshold.guarantee)."""
    statement: str
    frr_target: float
    confidence: float
    n: int
    k: int
    frr_bound: float  # FRR kept with `confidence` at this k (<= frr_target when target_met)
    target_met: bool
    images_needed: int  # good calibration images the target needs at this confidence
    marginal: dict  # the expected-value statement: {k, expected_frr, images_needed, target_met}
    warning: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def choose(scores: np.ndarray, alpha: float, confidence: float) -> tuple[float, Guarantee]:
    """(threshold, its guarantee) from the good calibration scores; verdict ng iff score >= threshold."""
    delta = 1.0 - confidence
    _check(alpha, delta)
    s = np.sort(np.asarray(scores, dtype=np.float64))
    n = int(s.size)
    if n == 0:
        raise ValueError("no calibration scores")
    need = images_needed(alpha, delta)
    k = order_statistic_k(n, alpha, delta)
    met = k is not None
    if k is None:
        k = n  # the largest score: the best this set can do, with the bound it really has
    bound = frr_bound(n, k, delta)
    km = marginal_k(n, alpha)
    need_marginal = math.ceil(1.0 / alpha - 1.0 - 1e-9)
    marginal = {"k": km if km is not None else n,
                "expected_frr": 1.0 - (km if km is not None else n) / (n + 1),
                "images_needed": need_marginal, "target_met": km is not None}
    warning = None
    if not met:
        warning = (f"only {n} good calibration images: a false-reject rate of {alpha:.2%} at {confidence:.0%} "
                   f"confidence needs at least {need}; the threshold is their largest score, which keeps the "
                   f"false-reject rate <= {bound:.2%} at {confidence:.0%} confidence (expected <= "
                   f"{marginal['expected_frr']:.2%}). Give more good images (--calib-data DIR, or `etstpm calibrate "
                   f"--good DIR`)")
    statement = (f"false-reject rate on new good parts <= {bound:.4%} with probability {confidence:.0%} over the "
                 f"choice of the {n} calibration images (threshold = {k}-th smallest of their scores)")
    return float(s[k - 1]), Guarantee(statement, alpha, confidence, n, k, bound, met, need, marginal, warning)


def _check(alpha: float, delta: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"target false-reject rate must be in (0, 1), got {alpha}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {1.0 - delta}")
