"""Calibration: threshold and normalization from held-out normal images; F1-optimal with a labelled set."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from etstpm.calibrate import calibrate_run, f1_threshold, holdout_samples, normalize, score_dataset
from etstpm.data import AnomalyDataset, DatasetError
from etstpm.run import load_run


def _copy_run(tiny_run, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[0], run_dir)
    return run_dir


def test_order_statistic_from_holdout(tiny_run, tmp_path: Path) -> None:
    run_dir = _copy_run(tiny_run, tmp_path)
    cal = calibrate_run(run_dir, frr=0.5, confidence=0.6, show_progress=False)
    model, meta = load_run(run_dir)
    hold = holdout_samples(meta)
    assert [Path(s.path).name for s in hold] == meta["holdout_images"]
    ds = AnomalyDataset(meta["data"], meta["category"], "train", meta["image_size"], samples=hold)
    scores, _, low = score_dataset(model, ds)
    thr = cal["threshold"]["raw"]
    g = cal["threshold"]["guarantee"]
    # 2 held-out images: P(Binomial(2, 0.5) >= 1) = 0.75 > 0.4, P(... >= 2) = 0.25 <= 0.4 -> k = 2, the larger
    assert g["n"] == 2 and g["k"] == 2 and g["target_met"] and thr == pytest.approx(scores.max())
    assert g["frr_bound"] == pytest.approx(1 - 0.4 ** 0.5) and cal["threshold"]["warning"] is None
    assert cal["threshold"]["method"] == "order-statistic"
    assert cal["threshold"]["details"]["source"] == {"kind": "holdout", "images": 2}
    norm = cal["normalization"]
    assert norm["method"] == "minmax" and norm["threshold"] == thr
    assert norm["min"] == pytest.approx(low) and norm["max"] == pytest.approx(scores.max())
    assert normalize(thr, norm) == pytest.approx(0.5)
    assert meta["calibration"] == json.loads((run_dir / "run.json").read_text())["calibration"]


def test_normalize_formula() -> None:
    norm = {"threshold": 0.2, "min": 0.0, "max": 0.4}
    assert normalize([0.2, 0.3, 1.0, -1.0], norm).tolist() == pytest.approx([0.5, 0.75, 1.0, 0.0])


def test_f1_threshold_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = rng.normal(labels * 1.0, 1.0)
    thr, details = f1_threshold(scores, labels)

    def f1_at(t: float) -> float:
        pred = scores >= t
        tp = int((pred & (labels == 1)).sum())
        fp = int((pred & (labels == 0)).sum())
        fn = int((~pred & (labels == 1)).sum())
        return 2 * tp / (2 * tp + fp + fn)

    best = max(f1_at(t) for t in scores)
    assert f1_at(thr) == pytest.approx(best) and details["f1"] == pytest.approx(best)


def test_f1_needs_a_separate_labelled_set(tiny_run, tmp_path: Path, hazelnut_root: Path) -> None:
    run_dir = _copy_run(tiny_run, tmp_path)
    _, root, category = tiny_run
    with pytest.raises(DatasetError, match="is the evaluation set of this run"):
        calibrate_run(run_dir, val_data=str(root), val_category=category, show_progress=False)
    # A different labelled set (here: hazelnut_toy's test folder, resized to the run's size) is accepted.
    cal = calibrate_run(run_dir, val_data=str(hazelnut_root), val_category="hazelnut_toy", show_progress=False)
    assert cal["threshold"]["method"] == "f1-optimal" and 0 < cal["threshold"]["details"]["f1"] <= 1
    assert cal["normalization"]["threshold"] == cal["threshold"]["raw"]


def test_calibrate_cli(tiny_run, tmp_path: Path, capsys) -> None:
    from etstpm.cli import main

    run_dir = _copy_run(tiny_run, tmp_path)
    assert main(["calibrate", "--run", str(run_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    meta = json.loads((run_dir / "run.json").read_text())
    assert out == meta["calibration"]
    # 2 held-out images cannot give 1 % at 90 %: their largest score, the bound it keeps, and a warning that says so
    g = out["threshold"]["guarantee"]
    assert out["threshold"]["raw"] == pytest.approx(out["threshold"]["details"]["calibration_score_max"])
    assert not g["target_met"] and g["images_needed"] == 230 and g["frr_bound"] == pytest.approx(1 - 0.1 ** 0.5)
    assert "needs at least 230" in out["threshold"]["warning"]
    assert main(["calibrate", "--run", str(tmp_path / "nothing")]) == 2
    assert main(["calibrate", "--run", str(run_dir), "--frr", "0"]) == 2
    assert "--frr must be in (0, 1)" in capsys.readouterr().err


def test_recalibrate_for_another_scorer() -> None:
    """INT8 export: the same target and confidence on the new scores; k-fold scores (no re-scorable images) keep the
    float threshold and say so."""
    from etstpm.calibrate import GoodScores, make_calibration, recalibrate
    from etstpm.conformal import choose

    rng = np.random.default_rng(3)
    fp = GoodScores(rng.random(300), 0.0, {"kind": "kfold", "folds": 5, "images": 300})
    thr, g = choose(fp.scores, 0.01, 0.9)
    cal = make_calibration(thr, "order-statistic", g.to_dict(), {}, fp)
    q = GoodScores(fp.scores * 1.1, 0.0, {"kind": "holdout", "images": 300})
    redone = recalibrate(cal, q)
    assert redone["threshold"]["raw"] == pytest.approx(thr * 1.1)
    assert redone["threshold"]["guarantee"]["confidence"] == 0.9 and redone["threshold"]["guarantee"]["k"] == g.k
    kept = recalibrate(cal, None)
    assert kept["threshold"]["raw"] == thr and kept["normalization"] == cal["normalization"]
    assert "k-fold" in kept["threshold"]["details"]["threshold_from"]


def test_drift_reference_is_a_quantile_below_the_threshold_with_the_ok_share_above_it() -> None:
    from etstpm.calibrate import drift_reference
    scores = np.arange(1, 101, dtype=np.float64)  # 1..100
    ref = drift_reference(scores, thr=100.0)  # one image (100) judged NG, 99 OK
    assert ref["quantile"] == 0.9
    assert ref["raw"] == pytest.approx(np.quantile(scores, 0.9))  # 90.1
    # OK images 1..99; those >= 90.1 are 91..99: 9 of 99
    assert ref["expected_share_ok"] == pytest.approx(9 / 99)
    assert drift_reference(scores, thr=0.5)["expected_share_ok"] is None  # no image judged OK: nothing to expect


def test_calibration_stores_the_drift_reference(tiny_run, tmp_path: Path) -> None:
    run_dir = _copy_run(tiny_run, tmp_path)
    cal = calibrate_run(run_dir, frr=0.5, confidence=0.6, show_progress=False)
    ref = cal["threshold"]["details"]["drift_reference"]
    assert ref["raw"] <= cal["threshold"]["raw"]
    assert 0.0 <= ref["expected_share_ok"] <= 1.0
