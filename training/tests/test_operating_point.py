"""Operating-point metrics (etstpm.operating_point) on toy scores with known answers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from etstpm.operating_point import (
    detection_at_frr,
    detection_at_zero_false_rejects,
    frr_against_bound,
    operating_points,
)


def _toy() -> tuple[np.ndarray, np.ndarray]:
    good = np.arange(200.0)  # 0..199
    bad = np.array([198.5, 196.0, 300.0, 10.0])
    return np.r_[np.zeros(200, int), np.ones(4, int)], np.r_[good, bad]


def test_detection_at_one_percent_allows_two_of_200_goods() -> None:
    labels, scores = _toy()
    p = detection_at_frr(labels, scores, 0.01)
    # 2 goods may be rejected: threshold just above 197 (the 3rd largest good) -> 198, 199 rejected; 198.5, 300 caught
    assert p["resolvable"] and p["allowed_false_rejects"] == 2 and p["threshold"] == 197.0
    assert p["false_rejects"] == 2 and p["false_reject_rate"] == 0.01
    assert p["detected"] == 2 and p["detection_rate"] == 0.5


def test_a_rate_the_test_set_cannot_resolve_is_not_invented() -> None:
    labels, scores = _toy()
    p = detection_at_frr(labels, scores, 0.001)  # 200 goods < 1000 needed
    assert not p["resolvable"] and p["goods_needed"] == 1000 and p["detection_rate"] is None
    z = detection_at_zero_false_rejects(labels, scores)
    assert z["threshold"] == 199.0 and z["detected"] == 1 and z["detection_rate"] == 0.25
    ops = operating_points(labels, scores)
    assert set(ops["at_frr"]) == {"0.01", "0.001"} and ops["at_zero_false_rejects"] == z


def test_ties_with_the_edge_good_count_as_not_rejected() -> None:
    labels = np.r_[np.zeros(100, int), np.ones(2, int)]
    scores = np.r_[np.arange(100.0), [98.0, 98.0]]  # defects tie with the 2nd largest good
    p = detection_at_frr(labels, scores, 0.01)
    assert p["threshold"] == 98.0 and p["false_rejects"] == 1 and p["detected"] == 0


def test_frr_against_bound_is_the_binomial_tail() -> None:
    r = frr_against_bound(4, 191, 0.01, 0.0088)
    assert r["p_at_bound"] == pytest.approx(1 - stats.binom.cdf(3, 191, 0.0088))
    assert r["p_at_target"] == pytest.approx(1 - stats.binom.cdf(3, 191, 0.01))
    assert r["consistent_with_bound"] == (r["p_at_bound"] >= 0.05)
    assert not frr_against_bound(14, 191, 0.01, 0.01)["consistent_with_bound"]  # 7.3 % cannot come from 1 %
    assert frr_against_bound(0, 6, 0.01, 0.08)["p_at_bound"] == 1.0
