"""Detection methods behind one protocol, found by name (`etstpm train --method NAME`, run.json "method").

A method is one package here (docs/training.md, "Adding a method"): it fits a detector on the teacher pyramid into the
run folder, loads it back as a module with forward(x normalised [N,3,H,W]) -> (anomaly_map [N,1,H,W], score [N]),
and says what differs for it in training, calibration and export. train.py, run.py and export.py ask the method
object and never test a method's name.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

if TYPE_CHECKING:  # train.py imports this registry; the config type is only needed for annotations
    from .. import data
    from ..backbone import FeatureExtractor
    from ..distributed import Dist
    from ..train import TrainConfig

# Runs (and eval results, manifests) written before there was a choice of method are STPM ones.
LEGACY_METHOD = "stpm"


class Method(Protocol):
    name: str  # --method value; run.json and model.json "method"
    model_name: str  # exported model name without --name: <category>-<model_name>
    config_field: str  # TrainConfig field (run.json config.<field>) holding the method's settings
    default_calibration: str  # where --calibration auto takes the good-image scores: "holdout" or "kfold"
    fit_status: str  # run.json "status" while the method fits
    keeps_imagenet_teacher: bool  # --finetune auto means no fine-tuning (docs/results.md, "The ET question")
    int8_warning: str | None  # logged by `export --int8`: why INT8 needs checking for this method

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The method's own `etstpm train` options (its argument group)."""

    def config_from_args(self, args: argparse.Namespace) -> Any:
        """The TrainConfig.<config_field> value from parsed options; ConfigError on a bad one."""

    def check_config(self, cfg: TrainConfig) -> None:
        """ConfigError on settings the method cannot run with, before anything is read or written."""

    def check_data(self, cfg: TrainConfig, train_images: int, world: int) -> None:
        """ConfigError when `train_images` images cannot be fitted by `world` processes."""

    def planned_epochs(self, cfg: TrainConfig) -> int:
        """run.json "epochs" of a new run (0 for a method without a training loop)."""

    def fit(self, cfg: TrainConfig, run_dir: Path, meta: dict, teacher: FeatureExtractor,
            train_part: list[data.Sample], device: torch.device, ctx: Dist) -> None:
        """Fit on `train_part` and write the method's files into `run_dir` (rank 0); record in `meta` what was done
        (wall times, epochs_done, the method's own block). Seeded by the caller."""

    def load(self, run_dir: Path, teacher: FeatureExtractor, device: str | torch.device) -> nn.Module:
        """The fitted detector of a run folder (RunError naming a missing file)."""

    def manifest(self, meta: dict, bank_fp16: bool) -> dict:
        """Extra top-level model.json entries (docs/model-format.md)."""


def _registry() -> dict[str, Method]:
    from .membank.method import MEMBANK
    from .stpm.method import STPM

    return {m.name: m for m in (STPM, MEMBANK)}


METHODS: dict[str, Method] = _registry()


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (this toolkit knows {', '.join(METHODS)})") from None


def method_name(record: dict) -> str:
    """The method of a run.json, eval result or model.json (their "method" key)."""
    return record.get("method", LEGACY_METHOD)
