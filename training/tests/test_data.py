"""Data loader: MVTec layout, resizing, masks, and clear errors for bad folders/files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_dataset, write_image
from etstpm import IMAGENET_MEAN, IMAGENET_STD
from etstpm.data import AnomalyDataset, DatasetError, split_holdout, train_samples


def test_real_grid_test_split(grid_root: Path) -> None:
    ds = AnomalyDataset(grid_root, "grid", "test", image_size=64)
    assert len(ds) == 14 and len(ds.samples) == 14
    defects = {s.defect for s in ds.samples}
    assert defects == {"good", "bent", "broken", "glue", "metal_contamination", "thread"}
    for i, (_path, label, defect, mask_path) in enumerate(ds.samples):
        item = ds[i]
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, 64, 64)
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert item["label"] == label == (defect != "good")
        assert item["has_mask"] is True
        if label:
            assert mask_path is not None and item["mask"].sum() > 0  # every grid defect has a visible mask
        else:
            assert item["mask"].sum() == 0


def test_normalization_is_imagenet(hazelnut_root: Path) -> None:
    ds = AnomalyDataset(hazelnut_root, "hazelnut_toy", "train", image_size=64)
    rgb = ds.rgb(0)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    x = ds[0]["image"]
    expected = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN)[:, None, None]) \
        / torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.allclose(x, expected)


def test_non_square_image_is_resized(hazelnut_root: Path) -> None:
    # hazelnut_toy has one 512x522 training image; every image comes out S x S.
    ds = AnomalyDataset(hazelnut_root, "hazelnut_toy", "train", image_size=48)
    assert {tuple(ds[i]["image"].shape) for i in range(len(ds))} == {(3, 48, 48)}


def test_grey_becomes_rgb_and_jpg_accepted(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    ds = AnomalyDataset(root, "cat", "test", image_size=32)
    good = [i for i, s in enumerate(ds.samples) if s.defect == "good"]
    rgb = ds.rgb(good[0])
    assert rgb.shape == (32, 32, 3)
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert any(s.path.endswith(".jpg") for s in ds.samples)


def test_masks_nearest_and_binary(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, size=(40, 40))
    ds = AnomalyDataset(root, "cat", "test", image_size=80)
    i = next(i for i, s in enumerate(ds.samples) if s.label == 1)
    m = ds[i]["mask"][0]
    assert set(m.unique().tolist()) == {0.0, 1.0}
    # mask rows 5:15, cols 5:20 at 40 px -> exactly rows 10:30, cols 10:40 at 80 px (nearest neighbour)
    expected = torch.zeros(80, 80)
    expected[10:30, 10:40] = 1
    assert torch.equal(m, expected)


def test_defect_folder_without_masks_is_image_level_only(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, masks=False)
    ds = AnomalyDataset(root, "cat", "test", image_size=32)
    defect = [ds[i] for i, s in enumerate(ds.samples) if s.label == 1]
    assert defect and all(d["has_mask"] is False and d["mask"].sum() == 0 for d in defect)
    assert all(ds[i]["has_mask"] for i, s in enumerate(ds.samples) if s.label == 0)


def test_error_missing_train_good(tmp_path: Path) -> None:
    (tmp_path / "cat" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"missing train/good folder: .*cat/train/good"):
        AnomalyDataset(tmp_path, "cat", "train")


def test_error_missing_category(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"category folder not found: .*dog.*\['cat'\]"):
        AnomalyDataset(tmp_path, "dog", "train")


def test_error_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "cat" / "train" / "good").mkdir(parents=True)
    (tmp_path / "cat" / "train" / "good" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"empty folder .*cat/train/good"):
        AnomalyDataset(tmp_path, "cat", "train")


def test_error_empty_defect_folder(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    (root / "cat" / "test" / "dent").mkdir()
    with pytest.raises(DatasetError, match=r"empty folder .*cat/test/dent"):
        AnomalyDataset(root, "cat", "test")


def test_error_unreadable_image(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    bad = root / "cat" / "train" / "good" / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(DatasetError, match=r"unreadable image: .*broken\.png"):
        AnomalyDataset(root, "cat", "train")


def test_error_truncated_image_names_file_on_load(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    p = write_image(root / "cat" / "train" / "good" / "trunc.jpg", (64, 64))
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])  # header readable, pixel data cut off
    ds = AnomalyDataset(root, "cat", "train", image_size=32)
    i = next(i for i, s in enumerate(ds.samples) if s.path.endswith("trunc.jpg"))
    with pytest.raises(DatasetError, match=r"unreadable image: .*trunc\.jpg"):
        ds[i]


def test_error_mask_size_mismatch(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, size=(48, 40))
    write_image(root / "cat" / "ground_truth" / "scratch" / "001_mask.png", (30, 30), mode="L")
    with pytest.raises(DatasetError, match=r"mask size 30x30 differs from image size 48x40: .*001_mask\.png"):
        AnomalyDataset(root, "cat", "test")


def test_holdout_split_deterministic_and_disjoint(hazelnut_root: Path) -> None:
    samples = train_samples(hazelnut_root, "hazelnut_toy")
    a_train, a_hold = split_holdout(samples, 0.1, seed=0)
    b_train, b_hold = split_holdout(samples, 0.1, seed=0)
    c_train, c_hold = split_holdout(samples, 0.1, seed=1)
    assert a_hold == b_hold and a_train == b_train
    assert len(a_hold) == 3 and len(a_train) == 25
    assert not set(a_hold) & set(a_train) and set(a_hold) | set(a_train) == set(samples)
    assert c_hold != a_hold
    assert split_holdout(samples, 0.0, 0) == (samples, [])
