"""`etstpm evaluate` end to end on the real tiny run (mvtec_grid_subset, 64 px; fixture in conftest.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from conftest import make_dataset
from etstpm import evaluate
from etstpm.cli import main
from etstpm.data import AnomalyDataset
from etstpm.run import load_run

GRID_DEFECTS = {"bent", "broken", "glue", "metal_contamination", "thread"}


@pytest.fixture(scope="module")
def result(tiny_run) -> dict:
    run_dir, root, category = tiny_run
    return evaluate.evaluate_run(run_dir, root, category, show_progress=False)


def test_metrics_match_an_independent_computation(tiny_run, result: dict) -> None:
    """Score the test set here with the model directly and compare with scikit-learn."""
    run_dir, root, category = tiny_run
    model, meta = load_run(run_dir)
    ds = AnomalyDataset(root, category, "test", meta["image_size"])
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        amap, score = model(torch.stack([it["image"] for it in items]))
    labels = np.array([it["label"] for it in items])
    masks = torch.stack([it["mask"] for it in items]).numpy().reshape(-1)
    assert result["n_images"] == 14 and result["n_defective"] == 11
    assert result["image_auroc"] == pytest.approx(roc_auc_score(labels, score.numpy()), abs=1e-6)
    assert result["pixel_auroc"] == pytest.approx(roc_auc_score(masks > 0.5, amap.numpy().reshape(-1)), abs=1e-6)
    assert 0.0 <= result["aupro"] <= 1.0
    assert set(result["per_defect"]) == GRID_DEFECTS
    defects = np.array([it["defect"] for it in items])
    sel = (defects == "good") | (defects == "bent")
    assert result["per_defect"]["bent"]["image_auroc"] == pytest.approx(
        roc_auc_score(labels[sel], score.numpy()[sel]), abs=1e-6)
    by_path = {im["path"]: im for im in result["images"]}
    assert len(by_path) == len(items)
    for it, sc in zip(items, score.numpy()):
        im = by_path[it["path"]]
        assert (im["defect"], im["label"]) == (it["defect"], it["label"])
        assert im["score"] == pytest.approx(float(sc), rel=1e-5)
    thr = meta["calibration"]["threshold"]["raw"]
    expected = ["ng" if im["score"] >= thr else "ok" for im in result["images"]]
    assert [im["verdict"] for im in result["images"]] == expected


def test_protocol_and_timing_fields(result: dict) -> None:
    assert result["protocol"] == "leakage-free" and result["leaked"] is False
    assert result["finetune"] == "rotation" and result["epochs"] == 1
    assert result["image_size"] == 64 and result["seed"] == 0
    assert result["inference_ms_per_image"] > 0 and result["eval_wall_time_s"] > 0
    assert result["train_wall_time_s"]["student"] > 0
    assert result["machine"]["cpu_count"] >= 1 and result["device"] == "cpu"
    json.dumps(result)  # JSON-ready as is


def test_verdict_quality_of_the_calibrated_threshold(tiny_run, result: dict) -> None:
    meta = json.loads((tiny_run[0] / "run.json").read_text())
    v = result["verdict"]
    assert v["threshold_raw"] == meta["calibration"]["threshold"]["raw"]
    assert v["n_good"] == 3 and v["n_defective"] == 11
    assert v["false_reject_rate"] == pytest.approx(v["false_rejects"] / 3)
    assert v["detection_rate"] == pytest.approx(v["detected"] / 11)
    assert sum(d["detected"] for d in v["per_defect"].values()) == v["detected"]
    # what the calibration promised, next to what the test shows (2 held-out images: too few, and it says so)
    g = meta["calibration"]["threshold"]["guarantee"]
    assert v["calibration"]["frr_bound"] == g["frr_bound"] and v["calibration"]["images"] == 2
    assert v["calibration"]["warning"] == meta["calibration"]["threshold"]["warning"]
    assert v["against_calibration"]["frr_target"] == 0.01
    # 3 good test images resolve neither 1 % nor 0.1 %; detection at 0 false rejects is counted from the scores
    ops = result["operating_points"]
    assert not ops["at_frr"]["0.01"]["resolvable"] and ops["at_frr"]["0.01"]["detection_rate"] is None
    scores = np.array([i["score"] for i in result["images"]])
    labels = np.array([i["label"] for i in result["images"]])
    z = ops["at_zero_false_rejects"]
    assert z["detected"] == int((scores[labels == 1] > scores[labels == 0].max()).sum())
    assert "1.0% false rejects not resolvable (3 good test images" in evaluate.format_table(result)


def test_verdict_quality_counts() -> None:
    v = evaluate.verdict_quality(0.5, np.array([0, 0, 0, 1, 1, 1]), ["good"] * 3 + ["a", "a", "b"],
                                 np.array([0.1, 0.6, 0.2, 0.7, 0.4, 0.5]))
    assert v["false_rejects"] == 1 and v["false_reject_rate"] == pytest.approx(1 / 3)
    assert v["detected"] == 2 and v["per_defect"] == {"a": {"n": 2, "detected": 1, "detection_rate": 0.5},
                                                      "b": {"n": 1, "detected": 1, "detection_rate": 1.0}}


def test_cli_writes_json_table_and_figures(tiny_run, tmp_path: Path, capsys) -> None:
    src, root, category = tiny_run
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)  # the CLI stores RUN/metrics.json; keep the shared fixture untouched
    out, figs = tmp_path / "eval.json", tmp_path / "figs"
    rc = main(["evaluate", "--run", str(run_dir), "--data", str(root), "--category", category,
               "--json", str(out), "--figures", str(figs), "--no-progress", "--batch-size", "5"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {"image_auroc", "pixel_auroc", "aupro", "per_defect", "protocol"} <= set(data)
    assert json.loads((run_dir / "metrics.json").read_text())["image_auroc"] == data["image_auroc"]
    table = capsys.readouterr().out
    assert "overall" in table and all(d in table for d in GRID_DEFECTS) and "leakage-free" in table
    for name in ("maps.png", "roc.png"):
        with Image.open(figs / name) as im:
            assert im.format == "PNG" and im.width > 500 and im.height > 300
            # not a blank canvas: many distinct colours (maps, curves)
            assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 50


def test_defect_folder_without_masks_is_image_level_only(tiny_run, tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", "cat", n_good=3, n_defect=3, masks=False, size=(80, 72))
    r = evaluate.evaluate_run(tiny_run[0], root, "cat", show_progress=False)
    assert r["image_auroc"] is not None and 0.0 <= r["image_auroc"] <= 1.0
    assert r["pixel_auroc"] is None and r["aupro"] is None
    assert r["per_defect"]["scratch"]["pixel_auroc"] is None and r["per_defect"]["scratch"]["n_with_mask"] == 0


def test_missing_run_is_a_clear_error(tmp_path: Path, capsys) -> None:
    rc = main(["evaluate", "--run", str(tmp_path / "nope"), "--data", str(tmp_path), "--category", "x",
               "--json", str(tmp_path / "o.json")])
    assert rc == 2 and "not a run folder" in capsys.readouterr().err
