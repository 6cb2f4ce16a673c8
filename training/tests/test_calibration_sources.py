"""Where calibration's good images come from: k-fold scores of a memory bank (no image scored by a bank holding its
own patches), a separate folder at training (--calib-data) or afterwards (calibrate --good), and what export carries.
Real data: the shared hazelnut_toy set at 64 px."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from etstpm.cli import main
from etstpm.data import AnomalyDataset, train_samples
from etstpm.methods.membank import MemoryBankModel
from etstpm.methods.membank.fit import MembankConfig, extract_patches
from etstpm.methods.membank.kfold import assign_folds, leave_fold_out_scores
from etstpm.run import read_meta

SIZE = 64


def _train(root: Path, category: str, weights: Path, out: Path, *extra: str) -> dict:
    assert main(["train", "--data", str(root), "--category", category, "--weights", str(weights), "--out", str(out),
                 "--method", "membank", "--image-size", str(SIZE), "--coreset-min", "128", "--no-progress",
                 *extra]) == 0
    return read_meta(out)


@pytest.fixture(scope="module")
def kfold_run(tmp_path_factory, weights_file: Path, hazelnut_root: Path) -> Path:
    run = tmp_path_factory.mktemp("kf") / "run"
    _train(hazelnut_root, "hazelnut_toy", weights_file, run)
    return run


@pytest.fixture(scope="module")
def split_root(tmp_path_factory, hazelnut_root: Path) -> tuple[Path, Path]:
    """hazelnut_toy's first 20 train/good images as a dataset, the other 8 as a captured folder (console layout)."""
    base = tmp_path_factory.mktemp("split")
    files = [Path(s.path) for s in train_samples(hazelnut_root, "hazelnut_toy")]
    for f in files[:20]:
        (base / "root" / "hz" / "train" / "good").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, base / "root" / "hz" / "train" / "good" / f.name)
    shutil.copytree(hazelnut_root / "hazelnut_toy" / "test", base / "root" / "hz" / "test")
    shutil.copytree(hazelnut_root / "hazelnut_toy" / "ground_truth", base / "root" / "hz" / "ground_truth")
    for f in files[20:]:
        (base / "captured" / "cam1" / "train" / "good").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, base / "captured" / "cam1" / "train" / "good" / f.name)
    return base / "root", base / "captured" / "cam1"


def test_kfold_scores_never_come_from_a_bank_holding_the_image(weights_file: Path, hazelnut_root: Path) -> None:
    """Bank = every patch (coreset ratio 1, no smoothing): an image scored against a bank holding its own patches
    scores exactly 0, so any leak shows. Each k-fold score must equal the score against a bank fitted, from the
    images themselves, on the other folds only."""
    teacher = load_pyramid_from(weights_file)
    cfg = MembankConfig(coreset_ratio=1.0, coreset_min=1, sigma=0.0, feature_dim=0)
    samples = train_samples(hazelnut_root, "hazelnut_toy")
    ds = AnomalyDataset(hazelnut_root, "hazelnut_toy", "train", SIZE, samples=samples)
    feats = extract_patches(teacher, ds, cfg, torch.device("cpu"), show_progress=False)
    fs = leave_fold_out_scores(teacher, feats, len(ds), SIZE, cfg, torch.device("cpu"), seed=0, folds=4,
                               show_progress=False)
    assert np.array_equal(fs.fold, assign_folds(len(ds), 4, 0)) and np.bincount(fs.fold).tolist() == [7, 7, 7, 7]
    assert (fs.scores > 1e-3).all()  # no image sees its own patches
    full = MemoryBankModel(teacher, feats, sigma=0.0).eval()
    x = torch.stack([ds[i]["image"] for i in range(4)])
    assert full(x)[1].abs().max() < 1e-2  # the leak the folds avoid: a bank holding the image scores it ~0
    for f in range(4):
        rest = [s for s, k in zip(samples, fs.fold) if k != f]
        inside = np.flatnonzero(fs.fold == f)
        bank = extract_patches(teacher, AnomalyDataset(hazelnut_root, "hazelnut_toy", "train", SIZE, samples=rest),
                               cfg, torch.device("cpu"), show_progress=False)
        model = MemoryBankModel(teacher, bank, sigma=0.0).eval()
        xs = torch.stack([ds[int(i)]["image"] for i in inside])
        with torch.no_grad():
            expect = model(xs)[1].double().numpy()
        np.testing.assert_allclose(fs.scores[inside], expect, rtol=1e-4, atol=1e-5)


def load_pyramid_from(weights: Path):
    from etstpm.backbone import FeatureExtractor
    from etstpm.weights import load_resnet18

    return FeatureExtractor(load_resnet18(str(weights))[0]).eval()


def test_kfold_run_calibrates_on_every_image_and_warns_it_is_too_few(kfold_run: Path, tmp_path: Path,
                                                                      caplog) -> None:
    meta = read_meta(kfold_run)
    assert meta["calibration_source"] == "kfold" and meta["holdout_images"] == [] and meta["train_images"] == 28
    assert sorted(meta["kfold"]["scores"]) == sorted(Path(s.path).name for s in train_samples(
        meta["data"], meta["category"]))
    t = meta["calibration"]["threshold"]
    g = t["guarantee"]
    assert t["method"] == "order-statistic" and t["details"]["source"] == {"kind": "kfold", "folds": 5, "images": 28}
    assert g["n"] == 28 and g["k"] == 28 and not g["target_met"] and g["images_needed"] == 230
    assert t["raw"] == pytest.approx(max(meta["kfold"]["scores"].values()))
    assert g["frr_bound"] == pytest.approx(1 - 0.1 ** (1 / 28)) and "needs at least 230" in t["warning"]
    # export carries the calibration and its guarantee, and warns again
    with caplog.at_level(logging.WARNING):
        assert main(["export", "--run", str(kfold_run), "--out", str(tmp_path / "m")]) == 0
    assert "needs at least 230" in caplog.text
    man = json.loads((tmp_path / "m" / "model.json").read_text())
    assert man["threshold"] == t and man["normalization"] == meta["calibration"]["normalization"]
    assert man["normalization"]["threshold"] == man["threshold"]["raw"]  # what the daemon reads, unchanged
    # recalibrating a k-fold run with another target reuses the stored scores (no refit)
    assert main(["calibrate", "--run", str(kfold_run), "--frr", "0.2", "--confidence", "0.5"]) == 0
    g2 = read_meta(kfold_run)["calibration"]["threshold"]["guarantee"]
    assert g2["target_met"] and g2["k"] < 28 and g2["frr_bound"] <= 0.2


def test_calibrate_good_folder_then_export(split_root: tuple[Path, Path], weights_file: Path, tmp_path: Path,
                                           capsys) -> None:
    root, captured = split_root
    run = tmp_path / "run"
    _train(root, "hz", weights_file, run)
    capsys.readouterr()
    assert main(["calibrate", "--run", str(run), "--good", str(captured)]) == 0
    cal = json.loads(capsys.readouterr().out)
    src = cal["threshold"]["details"]["source"]
    assert src == {"kind": "folder", "folder": str(captured), "images": 8}
    assert cal["threshold"]["guarantee"]["n"] == 8 and cal == read_meta(run)["calibration"]
    # the folder's scores under the shipped (full) bank: the threshold is their largest (8 < 230)
    from etstpm.calibrate import folder_samples, score_dataset
    from etstpm.run import load_run

    model, meta = load_run(run)
    ds = AnomalyDataset(captured, "", "train", SIZE, samples=folder_samples(captured))
    scores, _, _ = score_dataset(model, ds)
    assert cal["threshold"]["raw"] == pytest.approx(scores.max())
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text())["threshold"] == cal["threshold"]
    # images the bank was fitted on are refused: their scores would understate the false-reject rate
    assert main(["calibrate", "--run", str(run), "--good", str(root / "hz" / "train" / "good")]) == 2
    assert "trained this run" in capsys.readouterr().err


def test_calib_data_at_training_fits_on_all_of_train_good(split_root: tuple[Path, Path], weights_file: Path,
                                                          tmp_path: Path) -> None:
    root, captured = split_root
    meta = _train(root, "hz", weights_file, tmp_path / "run", "--calib-data", str(captured))
    assert meta["calibration_source"] == "folder" and meta["train_images"] == 20 and "kfold" not in meta
    assert meta["calibration"]["threshold"]["details"]["source"]["images"] == 8
    # the hold-out choice still works for membank, and keeps its images out of the bank
    meta = _train(root, "hz", weights_file, tmp_path / "ho", "--calibration", "holdout", "--holdout", "0.25")
    assert meta["train_images"] == 15 and len(meta["holdout_images"]) == 5
    assert meta["calibration"]["threshold"]["details"]["source"] == {"kind": "holdout", "images": 5}


def test_few_captured_parts_explicit_holdout_and_leave_one_out(split_root: tuple[Path, Path], weights_file: Path,
                                                                tmp_path: Path) -> None:
    """The console's capture layout with 4 parts: an explicit --holdout asks for a hold-out; without it the memory
    bank scores them leave-one-out (fewer images than folds)."""
    _, captured = split_root
    cam = tmp_path / "cap" / "cam1" / "train" / "good"
    cam.mkdir(parents=True)
    for f in sorted((captured / "train" / "good").iterdir())[:4]:
        shutil.copy(f, cam / f.name)
    meta = _train(tmp_path / "cap", "cam1", weights_file, tmp_path / "ho", "--holdout", "0.25")
    assert meta["calibration_source"] == "holdout" and meta["train_images"] == 3 and len(meta["holdout_images"]) == 1
    meta = _train(tmp_path / "cap", "cam1", weights_file, tmp_path / "kf")
    assert meta["calibration_source"] == "kfold" and meta["train_images"] == 4 and meta["kfold"]["folds"] == 4
    assert sorted(meta["kfold"]["fold"].values()) == [0, 1, 2, 3]
