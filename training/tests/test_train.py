"""End-to-end training through the real code paths (tiny sizes): run folder, fine-tuning modes, resume, seeds."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import TINY_SIZE
from etstpm.backbone import FeatureExtractor
from etstpm.cli import main
from etstpm.data import DatasetError
from etstpm.finetune import FinetuneConfig, RotationDataset, finetune
from etstpm.methods.stpm.student import StudentConfig
from etstpm.run import RunError, load_run
from etstpm.train import TrainConfig, train
from etstpm.weights import load_resnet18


def _cfg(root: Path, category: str, weights: Path, out: Path, **kw) -> TrainConfig:
    epochs = kw.pop("epochs", 1)
    ft = kw.pop("finetune", FinetuneConfig(mode="none"))
    return TrainConfig(data=str(root), category=category, weights=str(weights), out=str(out),
                       method=kw.pop("method", "stpm"),
                       image_size=kw.pop("image_size", TINY_SIZE),
                       student=StudentConfig(epochs=epochs, schedule=kw.pop("schedule", "cosine")),
                       finetune=ft, progress=kw.pop("progress", False), **kw)


def test_tiny_run_folder(tiny_run) -> None:
    run_dir, root, category = tiny_run
    model, meta = load_run(run_dir)
    assert not model.training and not model.student.training
    assert meta["category"] == category and meta["data"] == str(root)
    assert meta["image_size"] == TINY_SIZE and meta["epochs"] == 1 and meta["epochs_done"] == 1
    assert meta["finetune"] == "rotation" and meta["protocol"] == "leakage-free"  # single category -> rotation
    assert meta["weights"]["bn_form"] == "folded"
    assert len(meta["history"]["student"]) == 1 and meta["history"]["student"][0]["wall_s"] > 0
    assert [h["phase"] for h in meta["history"]["finetune"]] == ["head", "all", "all"]
    # hold-out: 10% of 25 grid train images, kept out of student training
    assert len(meta["holdout_images"]) == 2 and meta["train_images"] == 23
    assert meta["calibration"]["threshold"]["method"] == "order-statistic"
    assert meta["calibration_source"] == "holdout"  # stpm keeps the hold-out (no student per fold)
    assert (run_dir / "train.log").read_text().count("student epoch 1/1") == 1


def test_finetune_keeps_batchnorm_statistics_and_changes_weights(weights_file: Path, hazelnut_root: Path) -> None:
    from etstpm.data import train_samples

    resnet, _ = load_resnet18(weights_file)
    fe = FeatureExtractor(resnet)
    before = {k: v.clone() for k, v in fe.state_dict().items()}
    ds = RotationDataset(train_samples(hazelnut_root, "hazelnut_toy")[:8], 32)
    hist = finetune(fe, ds, 4, FinetuneConfig(head_epochs=1, full_epochs=1), torch.device("cpu"), seed=0,
                    show_progress=False)
    after = fe.state_dict()
    assert [h["phase"] for h in hist] == ["head", "all"]
    for k in before:
        if "running_" in k or "num_batches" in k:
            assert torch.equal(before[k], after[k]), f"BatchNorm statistic {k} changed"
    assert not torch.equal(before["layer3.1.conv2.weight"], after["layer3.1.conv2.weight"])
    assert not fe.training and all(not p.requires_grad for p in fe.parameters())


def test_resume_continues_and_matches_uninterrupted(tmp_path: Path, weights_file: Path, hazelnut_root: Path) -> None:
    # Constant rate: a 1-epoch run extended to 2 then follows the 2-epoch run's rates exactly (a cosine schedule is
    # stretched by an extension; test_cosine_schedule checks it on its own).
    common = dict(max_train_images=8, seed=3, image_size=32, schedule="constant")
    full = train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "full", epochs=2, **common))
    part = train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "part", epochs=1, **common))
    with pytest.raises(RunError, match="already holds a run"):
        train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, part, epochs=2, **common))
    with pytest.raises(RunError, match="data differs"):
        train(_cfg(tmp_path, "hazelnut_toy", weights_file, part, epochs=2, resume=True, **common))
    # The same data folder spelled another way (here through a symlink) is the same data.
    (tmp_path / "link").symlink_to(hazelnut_root, target_is_directory=True)
    train(_cfg(tmp_path / "link", "hazelnut_toy", weights_file, part, epochs=2, resume=True, **common))
    m_full, meta_full = load_run(full)
    m_part, meta_part = load_run(part)
    assert meta_part["epochs_done"] == 2 and len(meta_part["history"]["student"]) == 2
    for (k, a), b in zip(m_full.student.state_dict().items(), m_part.student.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k
    assert meta_full["history"]["student"][1]["loss"] == pytest.approx(meta_part["history"]["student"][1]["loss"],
                                                                        rel=1e-5)


def test_cosine_schedule_decays_to_zero_and_is_recorded(tmp_path: Path, weights_file: Path,
                                                         hazelnut_root: Path) -> None:
    from etstpm.methods.stpm.student import lr_at

    cfg = StudentConfig(lr=0.4, schedule="cosine")
    assert lr_at(cfg, 0, 100) == pytest.approx(0.4) and lr_at(cfg, 50, 100) == pytest.approx(0.2)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(StudentConfig(lr=0.4, schedule="constant"), 99, 100) == 0.4
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        lr_at(StudentConfig(schedule="step"), 0, 1)
    run = train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "c", epochs=2, max_train_images=8,
                     image_size=32, calibrate=False))
    hist = json.loads((run / "run.json").read_text())["history"]["student"]
    # batch 32 over 8 images: one step per epoch, so the last step of 2 sits half-way down the cosine.
    assert hist[0]["lr_last"] == pytest.approx(0.4) and hist[1]["lr_last"] == pytest.approx(0.2)


def test_teacher_feature_cache_gives_the_same_student(weights_file: Path, hazelnut_root: Path) -> None:
    from etstpm.data import AnomalyDataset, train_samples
    from etstpm.methods.stpm.model import ETSTPM
    from etstpm.methods.stpm.student import train_student

    resnet, _ = load_resnet18(weights_file)
    teacher = FeatureExtractor(resnet)
    ds = AnomalyDataset(hazelnut_root, "hazelnut_toy", "train", 32,
                        samples=train_samples(hazelnut_root, "hazelnut_toy")[:10], cache=True)
    results = []
    for cache in (False, True):
        torch.manual_seed(0)
        model = ETSTPM(teacher, FeatureExtractor())
        with tempfile.TemporaryDirectory() as d:
            hist = train_student(model, ds, StudentConfig(epochs=3, batch_size=4, cache_teacher=cache),
                                 torch.device("cpu"), Path(d), seed=0, show_progress=False)
        results.append((hist, model.student.state_dict()))
    (h0, s0), (h1, s1) = results
    assert [h["loss"] for h in h0] == pytest.approx([h["loss"] for h in h1], rel=1e-6)
    for k in s0:
        assert torch.allclose(s0[k].float(), s1[k].float(), atol=1e-6), k


def test_seed_changes_student_and_progress_bar_shows_loss_and_eta(tmp_path: Path, weights_file: Path,
                                                                  hazelnut_root: Path, capsys) -> None:
    a = train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "a", max_train_images=4, seed=0,
                   image_size=32, calibrate=False, progress=True))
    captured = capsys.readouterr()
    err = captured.err
    assert "student" in err and "loss=" in err and "epoch=1/1" in err
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", err)  # tqdm's elapsed<remaining (ETA)
    assert re.search(r"student epoch 1/1: loss [\d.]+, [\d.]+ s", captured.out)  # per-epoch line with wall time
    b = train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "b", max_train_images=4, seed=1,
                   image_size=32, calibrate=False))
    wa = load_run(a)[0].student.conv1.weight
    wb = load_run(b)[0].student.conv1.weight
    assert not torch.equal(wa, wb)


def test_classes_finetune_and_paper_protocol(tmp_path: Path, weights_file: Path, hazelnut_root: Path,
                                             grid_root: Path) -> None:
    ft = FinetuneConfig(mode="auto", extra_roots=[str(grid_root)], head_epochs=1, full_epochs=0,
                        paper_protocol=True)
    run = train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "paper", finetune=ft,
                     max_train_images=4, image_size=32, calibrate=False))
    meta = json.loads((run / "run.json").read_text())
    assert meta["finetune"] == "classes" and meta["protocol"] == "paper (leaked)"
    assert meta["finetune_details"]["classes"] == ["hazelnut_toy", "grid"]
    # paper protocol: train/good (4 after the cap) + 23 test images for hazelnut, 25 train + 14 test for grid
    assert meta["finetune_details"]["images_per_class"] == {"hazelnut_toy": 4 + 23, "grid": 25 + 14}


def test_labelled_folder_may_not_be_the_test_set(tmp_path: Path, weights_file: Path, hazelnut_root: Path,
                                                 grid_root: Path) -> None:
    ft = FinetuneConfig(mode="classes", extra_roots=[str(grid_root)],
                        labelled_dir=str(hazelnut_root / "hazelnut_toy" / "test"))
    with pytest.raises(DatasetError, match="overlaps the evaluation test folder"):
        train(_cfg(hazelnut_root, "hazelnut_toy", weights_file, tmp_path / "leak", finetune=ft, max_train_images=4))


def test_classes_needs_two_categories(tmp_path: Path, weights_file: Path, hazelnut_root: Path) -> None:
    rc = main(["train", "--data", str(hazelnut_root), "--category", "hazelnut_toy", "--weights", str(weights_file),
               "--out", str(tmp_path / "r"), "--method", "stpm", "--finetune", "classes", "--no-progress"])
    assert rc == 2


def test_cli_reports_bad_data(tmp_path: Path, weights_file: Path, capsys) -> None:
    rc = main(["train", "--data", str(tmp_path), "--category", "nothing", "--weights", str(weights_file),
               "--out", str(tmp_path / "r"), "--no-progress"])
    assert rc == 2
    assert "category folder not found" in capsys.readouterr().err



def test_labelled_folder_joins_classes_task(tmp_path: Path, hazelnut_root: Path, grid_root: Path) -> None:
    from conftest import write_image
    from etstpm.data import train_samples
    from etstpm.finetune import build_task, resolve_mode

    for i in range(3):
        write_image(tmp_path / "lab" / "grid" / "bent" / f"{i}.png", seed=i)
    write_image(tmp_path / "lab" / "hazelnut_toy" / "x.jpg")
    cfg = FinetuneConfig(mode="auto", extra_roots=[str(grid_root)], labelled_dir=str(tmp_path / "lab"))
    mode, pairs = resolve_mode(cfg, str(hazelnut_root), "hazelnut_toy")
    assert mode == "classes" and [c for _, c in pairs] == ["hazelnut_toy", "grid"]
    target = train_samples(hazelnut_root, "hazelnut_toy")[:5]
    ds, classes, desc = build_task(cfg, mode, pairs, target, 32)
    assert desc["labelled_images"] == 4 and desc["images_per_class"] == {"hazelnut_toy": 5, "grid": 25}
    labels = [y for _, y in ds.items]
    assert labels.count(0) == 5 + 1 and labels.count(1) == 25 + 3
    x, y = ds[len(ds) - 1]
    assert x.shape == (3, 32, 32) and classes[y] in ("grid", "hazelnut_toy")
    write_image(tmp_path / "lab" / "bolts" / "0.png")
    with pytest.raises(DatasetError, match=r"sub-folder .*bolts is not one of the fine-tuning categories"):
        build_task(cfg, mode, pairs, target, 32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_unavailable_is_a_clear_error(tmp_path: Path, weights_file: Path, hazelnut_root: Path, capsys) -> None:
    rc = main(["train", "--data", str(hazelnut_root), "--category", "hazelnut_toy", "--weights", str(weights_file),
               "--out", str(tmp_path / "r"), "--device", "cuda", "--no-progress"])
    assert rc == 2 and "--device cuda: CUDA is not available" in capsys.readouterr().err


def test_bad_option_values_are_named(tmp_path: Path, weights_file: Path, hazelnut_root: Path, capsys) -> None:
    base = ["train", "--data", str(hazelnut_root), "--category", "hazelnut_toy", "--weights", str(weights_file),
            "--out", str(tmp_path / "r"), "--no-progress"]
    for extra, msg in ((["--holdout", "1.5"], "--holdout must be in [0, 1)"),
                       (["--image-size", "8"], "--image-size must be at least 32"),
                       (["--frr", "-0.1"], "--frr must be in (0, 1)"),
                       (["--frr", "0"], "--frr must be in (0, 1)"),
                       (["--confidence", "1"], "--confidence must be in (0, 1)"),
                       (["--method", "stpm", "--calibration", "kfold"], "--calibration kfold is for --method membank"),
                       (["--folds", "1"], "--folds must be >= 2"),
                       (["--calib-data", str(tmp_path / "none")], "good-image folder not found")):
        assert main(base + extra) == 2
        assert msg in capsys.readouterr().err


def test_bad_training_image_fails_before_training(tmp_path: Path, weights_file: Path, capsys) -> None:
    from conftest import make_dataset

    root = make_dataset(tmp_path / "d", n_train=6)
    (root / "cat" / "train" / "good" / "zz_bad.png").write_bytes(b"not an image")
    rc = main(["train", "--data", str(root), "--category", "cat", "--weights", str(weights_file),
               "--out", str(tmp_path / "r"), "--image-size", "32", "--no-progress"])
    assert rc == 2 and "unreadable image" in capsys.readouterr().err
    assert not (tmp_path / "r" / "teacher.pt").exists()  # nothing was trained


def test_ema_student_is_saved_averaged_and_resumes(weights_file: Path, grid_root: Path, tmp_path: Path,
                                                   capsys) -> None:
    base = ["train", "--data", str(grid_root), "--category", "grid", "--weights", str(weights_file), "--method",
            "stpm", "--image-size", str(TINY_SIZE), "--no-progress", "--no-calibrate"]
    run = tmp_path / "ema"
    assert main(base + ["--out", str(run), "--epochs", "2", "--ema-epochs", "1"]) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    saved = torch.load(run / "student.pt", weights_only=True)
    assert ckpt["ema"] is not None and ckpt["ema"]["mass"] > 0
    key = "layer1.0.conv1.weight"
    # student.pt is the average, the checkpoint keeps the raw weights (to continue the trajectory).
    assert not torch.equal(saved[key], ckpt["student"][key])
    assert torch.allclose(saved[key], ckpt["ema"]["avg"][key] / ckpt["ema"]["mass"])
    assert main(base + ["--out", str(run), "--epochs", "3", "--ema-epochs", "1", "--resume"]) == 0
    assert json.loads((run / "run.json").read_text())["epochs_done"] == 3
    plain = tmp_path / "plain"
    assert main(base + ["--out", str(plain), "--epochs", "1"]) == 0
    assert main(base + ["--out", str(plain), "--epochs", "2", "--ema-epochs", "1", "--resume"]) == 2
    assert "cannot start mid-run" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "bad"), "--epochs", "1", "--ema-epochs", "-1"]) == 2


def test_run_without_method_is_stpm_and_an_unknown_method_is_named(tiny_run, tmp_path: Path) -> None:
    """Runs written before there was a choice of method carry no "method": they load and export as STPM."""
    import shutil

    from etstpm.export import export_run
    from etstpm.methods.stpm.model import ETSTPM
    from etstpm.run import read_meta, write_meta

    run_dir, _, category = tiny_run
    legacy = tmp_path / "legacy"
    shutil.copytree(run_dir, legacy)
    meta = read_meta(legacy)
    del meta["method"], meta["config"]["method"]
    write_meta(legacy, meta)
    model, _ = load_run(legacy)
    assert isinstance(model, ETSTPM)
    manifest = export_run(legacy, tmp_path / "model")
    assert manifest["method"] == "stpm" and manifest["name"] == f"{category}-etstpm" and "membank" not in manifest
    meta["method"] = "patchcore2"
    write_meta(legacy, meta)
    with pytest.raises(RunError, match=r"unknown method 'patchcore2' \(this toolkit knows stpm, membank\)"):
        load_run(legacy)
