"""Shared fixtures. Real assets come from ../shared (env ETSTPM_SHARED); tests that need them skip when absent.

`tiny_run` trains ONE small real run per session (mvtec_grid_subset, 64 px, 1 student epoch, rotation fine-tuning,
through the real CLI) that several test files share: -> (run_dir, data_root, category).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ETSTPM_SHARED", REPO.parent / "shared"))
WEIGHTS_NAME = "resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth"
TINY_SIZE = 64

# The tests' tensors are tiny: one thread is as fast, and on a shared, oversubscribed machine two OpenMP threads
# were measured 12x slower (3.7 s vs 43.9 s for test_teacher_feature_cache_gives_the_same_student at load ~9).
torch.set_num_threads(int(os.environ.get("ETSTPM_TEST_THREADS", "1")))


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set ETSTPM_SHARED to the shared assets folder)")
    return path


@pytest.fixture(scope="session")
def weights_file() -> Path:
    return _need(SHARED / "weights" / WEIGHTS_NAME, "shared BN-folded ResNet-18 weights")


@pytest.fixture(scope="session")
def hazelnut_root() -> Path:
    return _need(SHARED / "data" / "hazelnut_toy", "shared hazelnut_toy dataset")


@pytest.fixture(scope="session")
def grid_root() -> Path:
    return _need(SHARED / "data" / "mvtec_grid_subset", "shared mvtec_grid_subset dataset")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, weights_file: Path, grid_root: Path) -> tuple[Path, Path, str]:
    """A finished, calibrated run trained through `etstpm train` on real data (tiny settings)."""
    from etstpm.cli import main

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    rc = main(["train", "--data", str(grid_root), "--category", "grid", "--weights", str(weights_file),
               "--out", str(run_dir), "--method", "stpm", "--epochs", "1", "--image-size", str(TINY_SIZE),
               "--no-progress"])
    assert rc == 0
    return run_dir, grid_root, "grid"


def write_image(path: Path, size: tuple[int, int] = (48, 40), mode: str = "RGB", seed: int = 0) -> Path:
    """A random image file (generated data for error cases)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def make_dataset(root: Path, category: str = "cat", n_train: int = 4, n_good: int = 2, n_defect: int = 2,
                 masks: bool = True, size: tuple[int, int] = (48, 40)) -> Path:
    """A small generated MVTec-layout dataset; returns root."""
    c = root / category
    for i in range(n_train):
        write_image(c / "train" / "good" / f"{i:03d}.png", size, seed=i)
    for i in range(n_good):
        write_image(c / "test" / "good" / f"{i:03d}.png", size, mode="L", seed=100 + i)
    for i in range(n_defect):
        write_image(c / "test" / "scratch" / f"{i:03d}.jpg", size, seed=200 + i)
        if masks:
            m = np.zeros((size[1], size[0]), np.uint8)
            m[5:15, 5:20] = 255
            (c / "ground_truth" / "scratch").mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(c / "ground_truth" / "scratch" / f"{i:03d}_mask.png")
    return root
