"""Multi-process training: 2 CPU ranks (gloo) through the real torchrun (`python -m torch.distributed.run`) on
hazelnut_toy at 48 px, against the single-process run of the same settings. Memory bank: the identical bank.
STPM: the same loss trajectory up to floating-point summation order (global-batch BatchNorm, share-weighted loss)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import REPO
from etstpm.cli import main
from etstpm.distributed import Dist, RankBatchSampler, batch_shard, share

SIZE = "48"


def _torchrun(args: list[str], log: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "training"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "etstpm.cli", "--threads", "1", "train", *args]
    with open(log, "w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=900).returncode
    assert rc == 0, log.read_text()[-3000:]


def _common(root: Path, weights: Path) -> list[str]:
    return ["--data", str(root), "--category", "hazelnut_toy", "--weights", str(weights), "--image-size", SIZE,
            "--no-progress"]


def test_rank_batches_are_the_single_process_batches() -> None:
    for n, bs, world in ((25, 10, 2), (23, 8, 3), (7, 32, 2)):
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        single = DataLoader(list(range(n)), batch_size=bs, shuffle=True, generator=g1)
        loaders = [DataLoader(list(range(n)), generator=g, batch_sampler=RankBatchSampler(n, bs, Dist(r, world), g))
                   for r, g in enumerate([g2] + [torch.Generator().manual_seed(5) for _ in range(world - 1)])]
        for _ in range(2):  # two epochs: the generators advance alike
            want = [b.tolist() for b in single]
            got = list(zip(*[[b.tolist() for b in loader] for loader in loaders], strict=True))
            kept = [b for b in want if len(b) >= world]  # a last batch smaller than the world is skipped
            assert [sum(parts, []) for parts in got] == kept
            assert all(abs(len(a) - len(b)) <= 1 for parts in got for a in parts for b in parts)
    assert [share(10, Dist(r, 3)) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    shards = [batch_shard(37, 8, Dist(r, 2)) for r in range(2)]
    assert list(shards[0]) + list(shards[1]) == list(range(37)) and shards[0].stop % 8 == 0


def test_two_cpu_ranks_fit_the_same_memory_bank(tmp_path: Path, weights_file: Path, hazelnut_root: Path) -> None:
    args = _common(hazelnut_root, weights_file) + ["--method", "membank", "--coreset-min", "64"]
    assert main(["--threads", "1", "train", *args, "--out", str(tmp_path / "one")]) == 0
    _torchrun([*args, "--out", str(tmp_path / "two")], tmp_path / "two.log")
    one, two = (torch.load(tmp_path / r / "bank.pt", weights_only=True)["bank"] for r in ("one", "two"))
    assert one.shape == (64, 384) and torch.equal(one, two)
    m1, m2 = (json.loads((tmp_path / r / "run.json").read_text()) for r in ("one", "two"))
    assert m2["distributed"]["world_size"] == 2 and m2["distributed"]["backend"] == "gloo"
    # all 28 train/good images: the default k-fold calibration keeps none of them out of the bank
    assert m2["membank"]["patches"] == m1["membank"]["patches"] == 28 * 6 * 6
    assert m2["calibration"] == m1["calibration"]


def test_two_cpu_ranks_train_the_student_like_one_process(tmp_path: Path, weights_file: Path,
                                                          hazelnut_root: Path) -> None:
    # 25 training images, global batch 5: every step splits 3/2 across the ranks, so the share weighting matters.
    args = _common(hazelnut_root, weights_file) + ["--method", "stpm", "--finetune", "none", "--epochs", "2",
                                                   "--batch-size", "5"]
    assert main(["--threads", "1", "train", *args, "--out", str(tmp_path / "one")]) == 0
    _torchrun([*args, "--out", str(tmp_path / "two")], tmp_path / "two.log")
    m1, m2 = (json.loads((tmp_path / r / "run.json").read_text()) for r in ("one", "two"))
    l1 = [h["loss"] for h in m1["history"]["student"]]
    l2 = [h["loss"] for h in m2["history"]["student"]]
    assert len(l1) == len(l2) == 2 and l1[1] < l1[0]
    # Measured here: 4e-5 and 2e-4 relative (float summation order; it grows over epochs as it does between one
    # process with 1 and with 2 threads). With the ranks' losses averaged unweighted epoch 1 was off by 3.3e-3,
    # with per-rank BatchNorm statistics by 4.9e-3: the bounds catch both.
    assert l2[0] == pytest.approx(l1[0], rel=5e-4)
    assert l2[1] == pytest.approx(l1[1], rel=5e-3)
    assert m2["distributed"] == {"world_size": 2, "backend": "gloo", "global_batch_size": 5,
                                 "batchnorm": "GlobalBatchNorm2d"}
    assert m2["calibration"]["threshold"]["raw"] == pytest.approx(m1["calibration"]["threshold"]["raw"], rel=0.05)
    # rank 0 alone wrote the run: one log line per epoch, not two
    assert (tmp_path / "two" / "train.log").read_text().count("student epoch 2/2") == 1
    s1, s2 = (torch.load(tmp_path / r / "student.pt", weights_only=True) for r in ("one", "two"))
    assert s1.keys() == s2.keys()  # a plain BatchNorm2d state_dict: loads like any other run
