"""Order-statistic thresholds (etstpm.conformal): k and the bound against direct computations, and by simulation
that the stated confidence holds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from etstpm import conformal


def _violation_exact(n: int, k: int, alpha: float) -> float:
    """P(FRR > alpha) = P(U_(k) < 1 - alpha) = sum_{j >= k} C(n, j) (1 - alpha)^j alpha^(n - j), summed directly."""
    return sum(math.comb(n, j) * (1 - alpha) ** j * alpha ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize(("n", "alpha", "delta"), [(230, 0.01, 0.1), (761, 0.01, 0.1), (320, 0.01, 0.1),
                                                   (1000, 0.001, 0.05), (50, 0.1, 0.1), (2, 0.5, 0.4),
                                                   (229, 0.01, 0.1), (28, 0.01, 0.1)])
def test_k_is_the_smallest_order_statistic_meeting_the_confidence(n: int, alpha: float, delta: float) -> None:
    brute = next((k for k in range(1, n + 1) if _violation_exact(n, k, alpha) <= delta), None)
    assert conformal.order_statistic_k(n, alpha, delta) == brute
    # the same probability as the Beta law of the k-th uniform order statistic
    for k in {1, n // 2 or 1, n}:
        assert conformal.violation_probability(n, k, alpha) == pytest.approx(stats.beta.cdf(1 - alpha, k, n + 1 - k),
                                                                             abs=1e-12)
        assert conformal.violation_probability(n, k, alpha) == pytest.approx(_violation_exact(n, k, alpha), abs=1e-9)


def test_images_needed_and_the_bound_of_the_maximum() -> None:
    assert conformal.images_needed(0.01, 0.1) == 230  # 0.99^229 = 0.1002 > 0.1 >= 0.99^230
    assert 0.99 ** 229 > 0.1 >= 0.99 ** 230
    assert conformal.images_needed(0.001, 0.1) == 2302
    for n in (1, 28, 76, 229):
        b = conformal.frr_bound(n, n, 0.1)
        assert b == pytest.approx(1 - 0.1 ** (1 / n))
        assert (1 - b) ** n == pytest.approx(0.1)  # P(FRR > b) = P(all n below 1 - b) = delta
    # a met target: the bound at the chosen k is within the target
    k = conformal.order_statistic_k(761, 0.01, 0.1)
    assert conformal.frr_bound(761, k, 0.1) <= 0.01 < conformal.frr_bound(761, k - 1, 0.1)


def test_too_few_images_take_the_maximum_and_say_so() -> None:
    scores = np.random.default_rng(0).normal(size=76)
    thr, g = conformal.choose(scores, 0.01, 0.9)
    assert thr == scores.max() and g.k == 76 and not g.target_met and g.images_needed == 230
    assert g.frr_bound == pytest.approx(1 - 0.1 ** (1 / 76))  # 2.98 %
    assert "only 76 good calibration images" in g.warning and "needs at least 230" in g.warning
    assert g.marginal == {"k": 76, "expected_frr": pytest.approx(1 / 77), "images_needed": 99, "target_met": False}
    thr, g = conformal.choose(np.arange(300.0), 0.01, 0.9)
    assert g.target_met and g.warning is None and thr == float(g.k - 1)  # the k-th smallest of 0..299
    assert g.marginal["k"] == math.ceil(301 * 0.99) and g.marginal["target_met"]


@pytest.mark.parametrize("n", [300, 60])
def test_simulated_violation_rate_matches_the_stated_confidence(n: int) -> None:
    """Uniform good scores: a threshold t rejects a new good part with probability 1 - t, the FRR exactly."""
    alpha, confidence, trials = 0.01, 0.9, 4000
    rng = np.random.default_rng(1234)
    frr = np.empty(trials)
    bound = None
    for i in range(trials):
        thr, g = conformal.choose(rng.random(n), alpha, confidence)
        frr[i] = 1.0 - thr
        bound = g.frr_bound
    limit = alpha if n >= 230 else bound  # with too few images the stated bound is the guarantee
    rate = float((frr > limit).mean())
    exact = conformal.violation_probability(n, g.k, limit)
    tol = 4 * math.sqrt(0.1 * 0.9 / trials)  # 4 standard errors of a rate near 0.1
    assert exact <= 0.1 + 1e-9
    assert rate <= 0.1 + tol and abs(rate - exact) <= tol
    # the marginal form: average FRR of k = ceil((n + 1)(1 - alpha)) is 1 - k / (n + 1)
    km = conformal.marginal_k(n, alpha)
    if km is not None:
        u = np.sort(rng.random((trials, n)), axis=1)[:, km - 1]
        assert float((1 - u).mean()) <= alpha + 4 * float((1 - u).std()) / math.sqrt(trials)


def test_bad_targets_are_named() -> None:
    with pytest.raises(ValueError, match="target false-reject rate"):
        conformal.choose(np.ones(3), 0.0, 0.9)
    with pytest.raises(ValueError, match="confidence"):
        conformal.choose(np.ones(3), 0.01, 1.0)
