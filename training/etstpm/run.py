"""Run folder written by `etstpm train --out RUN`, read by evaluate/calibrate/export.

RUN/run.json        metadata (config, protocol, wall times, per-epoch history, calibration)
RUN/teacher.pt      fine-tuned teacher pyramid (conv1..layer3 state_dict, torchvision key names)
RUN/train.log       human-readable log, one line per epoch
and the files of the run's method (etstpm.methods): student.pt and checkpoint.pt (stpm), bank.pt (membank).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backbone import FeatureExtractor
from .errors import RunError  # defined there; importable from here too

RUN_FORMAT = "etstpm-run/1"
META = "run.json"
TEACHER = "teacher.pt"
LOG = "train.log"


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary file and rename, so an interrupted write never leaves a half file behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: Path) -> None:
    atomic_write_bytes(path, lambda tmp: torch.save(obj, tmp))


def write_meta(run_dir: str | Path, meta: dict) -> None:
    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
    atomic_write_bytes(Path(run_dir) / META, w)


def read_meta(run_dir: str | Path) -> dict:
    p = Path(run_dir) / META
    if not p.is_file():
        raise RunError(f"not a run folder (no {META}): {run_dir}")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{p}: invalid JSON ({e})") from e
    if meta.get("format") != RUN_FORMAT:
        raise RunError(f"{p}: format {meta.get('format')!r}, expected {RUN_FORMAT!r}")
    return meta


def load_pyramid(path: Path, device: str | torch.device = "cpu") -> FeatureExtractor:
    if not path.is_file():
        raise RunError(f"missing {path.name} in {path.parent} (training not finished? continue with --resume)")
    fe = FeatureExtractor()
    fe.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return fe.to(device)


def run_method(meta: dict) -> str:
    """The run's detection method (etstpm.methods.method_name: runs from before methods existed are STPM runs)."""
    from .methods import method_name  # late: the methods import this module's file helpers

    return method_name(meta)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(detector in eval mode on `device`, meta dict) from a finished run folder.

    Every detector has forward(x normalised [N,3,H,W]) -> (anomaly_map [N,1,H,W], score [N]).
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    from .methods import get_method  # late: the methods import this module's file helpers

    try:
        method = get_method(run_method(meta))
    except ValueError as e:
        raise RunError(f"{run_dir / META}: {e}") from e
    teacher = load_pyramid(run_dir / TEACHER, device)
    model = method.load(run_dir, teacher, device).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, meta
