"""Memory-bank detector: the fast coreset against the textbook loop, the patch embedding, and a real fit on
hazelnut_toy through the CLI (train -> evaluate -> export, ONNX against PyTorch)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from etstpm.cli import main
from etstpm.methods.membank import MemoryBankModel, PatchFeatures, greedy_coreset
from etstpm.methods.membank.coreset import greedy_coreset_bruteforce
from etstpm.methods.membank.fit import MembankConfig, bank_size
from etstpm.methods.membank.model import GaussianBlur, gaussian_kernel1d
from etstpm.run import load_run


def test_fast_coreset_picks_what_the_textbook_loop_picks() -> None:
    g = torch.Generator().manual_seed(1)
    # Clustered points (like patches: many near-duplicates), so the pruning really skips most of them.
    centres = torch.randn(20, 48, generator=g) * 5
    x = (centres[torch.randint(20, (3000,), generator=g)] + torch.randn(3000, 48, generator=g)).double()
    for proj in (0, 16):
        fast = greedy_coreset(x, 150, proj_dim=proj, seed=3)
        slow = greedy_coreset_bruteforce(x, 150, proj_dim=proj, seed=3)
        assert torch.equal(fast, slow)
    assert len(set(fast.tolist())) == 150  # no point picked twice


def test_coreset_covers_every_cluster_and_rejects_bad_sizes() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 16, generator=g) * 20
    x = centres.repeat_interleave(50, 0) + 0.01 * torch.randn(400, 16, generator=g)
    picked = greedy_coreset(x, 8, proj_dim=0)
    assert sorted((picked // 50).tolist()) == list(range(8))  # k-center: one point from each far cluster
    with pytest.raises(ValueError, match="coreset size"):
        greedy_coreset(x, 0)
    with pytest.raises(ValueError, match="coreset size"):
        greedy_coreset(x, 401)


def test_bank_size_has_a_floor_and_a_ceiling() -> None:
    cfg = MembankConfig(coreset_ratio=0.01, coreset_min=100)
    assert bank_size(1_000_000, cfg) == 10_000
    assert bank_size(5_000, cfg) == 100
    assert bank_size(50, cfg) == 50


def test_patch_features_shape_and_bad_options() -> None:
    pyr = [torch.randn(2, 64, 16, 16), torch.randn(2, 128, 8, 8), torch.randn(2, 256, 4, 4)]
    f = PatchFeatures(("layer2", "layer3"), 3)(pyr)
    assert f.shape == (2, 384, 8, 8)
    # layer2's own part of the embedding is its 3x3 neighbourhood mean.
    expect = torch.nn.functional.avg_pool2d(pyr[1], 3, 1, 1, count_include_pad=False)
    assert torch.allclose(f[:, :128], expect)
    with pytest.raises(ValueError, match="unknown feature layer 'layer4'"):
        PatchFeatures(("layer4",))
    with pytest.raises(ValueError, match="odd"):
        PatchFeatures(("layer2",), 2)


def test_distance_is_exact_nearest_neighbour_and_blur_keeps_mass() -> None:
    from etstpm.backbone import FeatureExtractor

    torch.manual_seed(0)
    bank = torch.randn(5000, 384)  # more than one distance chunk
    model = MemoryBankModel(FeatureExtractor(), bank).eval()
    f = torch.randn(2, 384, 4, 4)
    got = model.patch_distances(f)
    q = f.flatten(2).transpose(1, 2)
    want = torch.cdist(q, bank).amin(-1).view(2, 1, 4, 4)
    assert torch.allclose(got, want, atol=1e-3)
    k = gaussian_kernel1d(4.0)
    assert k.numel() == 33 and abs(float(k.sum()) - 1) < 1e-6
    flat = torch.full((1, 1, 40, 40), 2.5)
    assert torch.allclose(GaussianBlur(4.0)(flat), flat, atol=1e-5)


def test_image_score_rules_leave_out_the_edge_and_average_the_top(monkeypatch) -> None:
    from etstpm.backbone import FeatureExtractor

    dist = torch.zeros(1, 1, 6, 6)  # a 6x6 patch grid on a 24x24 image: 4 px per patch
    amap = torch.zeros(1, 1, 24, 24)
    amap[0, 0, 1, 13] = 9.0  # an odd value in the edge band of one patch
    amap[0, 0, 8, 8], amap[0, 0, 12, 12] = 4.0, 2.0

    def score(**kw) -> float:
        m = MemoryBankModel(FeatureExtractor(), torch.zeros(4, 384), **kw)
        monkeypatch.setattr(m, "_maps", lambda x: (dist, amap, amap))
        return float(m(torch.zeros(1, 3, 24, 24))[1])

    assert score(score_border=0) == 9.0  # the map's maximum
    assert score(score_border=1) == 4.0 and score() == 4.0  # the edge band (default 2 patches) does not count
    assert score(score_border=1, score_top=2 / 256) == pytest.approx(3.0)  # mean of the 2 largest of 16x16 px
    assert score(score_border=2, score_top=0.5) == pytest.approx((4.0 + 2.0) / 32)  # half of the inner 8x8 px
    with pytest.raises(ValueError, match="leaves no patch"):
        score(score_border=3)  # 2 x 3 patches of a 6-patch grid
    with pytest.raises(ValueError, match="score_border must be >= 0"):
        MemoryBankModel(FeatureExtractor(), torch.zeros(4, 384), score_border=-1)


@pytest.fixture(scope="module")
def hazelnut_bank_run(tmp_path_factory, weights_file: Path, hazelnut_root: Path) -> Path:
    run = tmp_path_factory.mktemp("mb") / "run"
    rc = main(["train", "--data", str(hazelnut_root), "--category", "hazelnut_toy", "--weights", str(weights_file),
               "--out", str(run), "--method", "membank", "--image-size", "128", "--coreset-min", "256",
               "--no-progress"])
    assert rc == 0
    return run


def test_membank_run_is_calibrated_and_separates_real_defects(hazelnut_bank_run: Path, hazelnut_root: Path,
                                                               tmp_path: Path) -> None:
    model, meta = load_run(hazelnut_bank_run)
    assert isinstance(model, MemoryBankModel) and meta["method"] == "membank" and meta["finetune"] == "none"
    mb = meta["membank"]
    # 28 train/good images, all fitted (k-fold calibration, the membank default) at 128 px -> 16x16 patches each.
    assert mb["patches"] == 28 * 16 * 16 and mb["bank_size"] == 256 and mb["dim"] == 384  # 256 x 384 within budget
    assert meta["holdout_images"] == [] and len(meta["kfold"]["scores"]) == 28
    assert meta["calibration"]["threshold"]["raw"] > 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--run", str(hazelnut_bank_run), "--data", str(hazelnut_root), "--category",
                 "hazelnut_toy", "--json", str(out), "--no-progress", "--figures", str(tmp_path / "fig")]) == 0
    res = json.loads(out.read_text())
    assert res["method"] == "membank" and res["image_auroc"] > 0.8  # real colour-mark defects, no training
    assert (tmp_path / "fig" / "maps.png").stat().st_size > 0


def test_membank_export_matches_pytorch_and_fp16_bank_halves_it(hazelnut_bank_run: Path, hazelnut_root: Path,
                                                                 tmp_path: Path) -> None:
    import onnxruntime as ort

    from etstpm.data import AnomalyDataset, to_tensor

    assert main(["export", "--run", str(hazelnut_bank_run), "--out", str(tmp_path / "m32")]) == 0
    assert main(["export", "--run", str(hazelnut_bank_run), "--out", str(tmp_path / "m16"), "--bank-fp16"]) == 0
    man = json.loads((tmp_path / "m32" / "model.json").read_text())
    assert man["method"] == "membank" and man["membank"]["bank_size"] == 256
    assert json.loads((tmp_path / "m16" / "model.json").read_text())["membank"]["bank_dtype"] == "float16"
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "m32" / "model.onnx")).graph.node}
    assert {"MatMul", "ReduceMin"} <= ops
    model, _ = load_run(hazelnut_bank_run)
    ds = AnomalyDataset(hazelnut_root, "hazelnut_toy", "test", 128)
    frames = np.stack([ds.rgb(i) for i in range(4)])
    with torch.no_grad():
        want_map, want = model(torch.stack([to_tensor(f) for f in frames]))
    for sub, tol in (("m32", 1e-4), ("m16", 5e-3)):
        sess = ort.InferenceSession(str(tmp_path / sub / "model.onnx"), providers=["CPUExecutionProvider"])
        amap, score = sess.run(None, {"frames": frames})
        assert amap.shape == (4, 1, 128, 128)
        np.testing.assert_allclose(score, want.numpy(), rtol=tol, atol=tol)
    s32 = (tmp_path / "m32" / "model.onnx").stat().st_size
    s16 = (tmp_path / "m16" / "model.onnx").stat().st_size
    assert s32 - s16 == pytest.approx(256 * 384 * 2, rel=0.05)  # the bank's bytes, halved


def test_fp16_bank_needs_a_bank(tiny_run, tmp_path: Path, capsys) -> None:
    assert main(["export", "--run", str(tiny_run[0]), "--out", str(tmp_path / "o"), "--bank-fp16"]) == 2
    assert "has no memory bank" in capsys.readouterr().err


def test_projected_bank_measures_distance_between_projections() -> None:
    from etstpm.backbone import FeatureExtractor
    from etstpm.methods.membank.fit import pca_directions

    torch.manual_seed(0)
    # Patches that vary along 16 directions only: a 16-wide PCA keeps every distance.
    basis = torch.linalg.qr(torch.randn(384, 16)).Q
    feats = torch.randn(3000, 16) @ basis.t() + 5.0
    proj = pca_directions(feats, 16)
    assert proj.shape == (384, 16) and torch.allclose(proj.t() @ proj, torch.eye(16), atol=1e-4)
    bank = feats[:500]
    model = MemoryBankModel(FeatureExtractor(), bank @ proj, projection=proj).eval()
    f = (torch.randn(2 * 9, 16) @ basis.t() + 5.0).view(2, 3, 3, 384).permute(0, 3, 1, 2)
    want = torch.cdist(f.flatten(2).transpose(1, 2), bank).amin(-1).view(2, 1, 3, 3)
    assert torch.allclose(model.patch_distances(f), want, atol=2e-3)
    with pytest.raises(ValueError, match=r"projection must be \[384, D\]"):
        MemoryBankModel(FeatureExtractor(), bank @ proj, projection=proj[:100])
    with pytest.raises(ValueError, match=r"bank must be \[M, 16\]"):
        MemoryBankModel(FeatureExtractor(), bank, projection=proj)
    with pytest.raises(ValueError, match="wider than the patch features"):
        MembankConfig(feature_dim=400).validate()


def test_auto_width_keeps_the_search_within_its_budget() -> None:
    from etstpm.methods.membank.fit import bank_width

    cfg = MembankConfig()  # auto width, 1M multiply-adds a patch
    assert bank_width(2048, 384, cfg) == 384  # a small bank keeps every dimension (2048 x 384 = 0.79M)
    assert bank_width(14029, 384, cfg) == 71  # MTD's 2 % bank: 1M // 14029
    assert bank_width(10 ** 6, 384, cfg) == 32  # never narrower than 32
    assert bank_width(14029, 384, MembankConfig(feature_dim=0)) == 384  # 0 = always full
    assert bank_width(2048, 384, MembankConfig(feature_dim=96)) == 96
    with pytest.raises(ValueError, match="budget must be >= 1"):
        MembankConfig(nn_budget=0).validate()


def test_projected_bank_run_exports_with_the_projection(weights_file: Path, hazelnut_root: Path,
                                                         tmp_path: Path) -> None:
    import onnxruntime as ort

    from etstpm.data import AnomalyDataset, to_tensor

    run = tmp_path / "run"
    assert main(["train", "--data", str(hazelnut_root), "--category", "hazelnut_toy", "--weights", str(weights_file),
                 "--out", str(run), "--method", "membank", "--image-size", "64", "--coreset-min", "128",
                 "--feature-dim", "96", "--no-progress"]) == 0
    model, meta = load_run(run)
    assert meta["membank"]["dim"] == 96 and meta["membank"]["feature_width"] == 384
    assert model.bank.shape == (128, 96) and model.projection.shape == (384, 96)
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m")]) == 0
    man = json.loads((tmp_path / "m" / "model.json").read_text())["membank"]
    assert man["dim"] == 96 and man["projection"] == "pca" and man["feature_width"] == 384
    ds = AnomalyDataset(hazelnut_root, "hazelnut_toy", "test", 64)
    frames = np.stack([ds.rgb(i) for i in range(3)])
    with torch.no_grad():
        _, want = model(torch.stack([to_tensor(f) for f in frames]))
    sess = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"frames": frames})[1], want.numpy(), rtol=1e-4, atol=1e-4)
