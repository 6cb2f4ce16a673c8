"""ET-STPM as a method: a student pyramid distilled from the teacher (student.py), scored by model.py."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ... import data
from ...argtypes import positive_int
from ...backbone import FeatureExtractor
from ...distributed import Dist
from ...errors import ConfigError
from ...run import load_pyramid, save_torch, write_meta
from .model import ETSTPM
from .student import CHECKPOINT, StudentConfig, train_student

if TYPE_CHECKING:
    from ...train import TrainConfig

log = logging.getLogger("etstpm")

STUDENT = "student.pt"  # final student pyramid, written when training finishes


class StpmMethod:
    name = "stpm"
    model_name = "etstpm"
    config_field = "student"
    # One student per fold would multiply the training time by the fold count: STPM keeps the hold-out.
    default_calibration = "holdout"
    fit_status = "student"
    keeps_imagenet_teacher = False
    # bench/results/int8: on MTD (3-epoch run) image AUROC moved by +0.009, pixel AUROC by -0.011
    int8_warning = ("--int8 on an STPM run: its map is the small difference of two networks' features, which int8 "
                    "rounding of both shifts (docs/training.md, INT8); check the INT8 model on a labelled set before "
                    "shipping it")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        # --batch-size is shared with the teacher's fine-tuning: cli._add_train
        g = parser.add_argument_group("student (--method stpm)")
        g.add_argument("--epochs", type=positive_int, default=100, help="student epochs (stpm)")
        g.add_argument("--lr", type=float, default=0.4,
                       help="student SGD learning rate (peak, with --lr-schedule cosine)")
        g.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                       help="student learning rate over the run: the paper's constant rate, or a cosine decay to 0 "
                            "(docs/results.md, 'STPM that converges', has the measurement)")
        g.add_argument("--ema-epochs", type=float, default=0.0,
                       help="save an exponential moving average of the student's weights with this half-life in epochs "
                            "instead of the last step's (0 = off, the paper)")
        g.add_argument("--no-teacher-cache", action="store_true",
                       help="recompute teacher features every epoch instead of keeping them in memory (see docs)")
        g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for student training")

    def config_from_args(self, args: argparse.Namespace) -> StudentConfig:
        return StudentConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.lr_schedule,
                             ema_epochs=args.ema_epochs, num_workers=args.workers,
                             cache_teacher=False if args.no_teacher_cache else None)

    def check_config(self, cfg: TrainConfig) -> None:
        if cfg.calibration_source() == "kfold":
            raise ConfigError("--calibration kfold is for --method membank (an STPM run would need a student per "
                              "fold); use --calibration holdout or --calib-data DIR")

    def check_data(self, cfg: TrainConfig, train_images: int, world: int) -> None:
        if train_images < world:
            raise ConfigError(f"{world} processes but only {train_images} training images")

    def planned_epochs(self, cfg: TrainConfig) -> int:
        return cfg.student.epochs

    def fit(self, cfg: TrainConfig, run_dir: Path, meta: dict, teacher: FeatureExtractor,
            train_part: list[data.Sample], device: torch.device, ctx: Dist) -> None:
        student = FeatureExtractor().to(device)  # torchvision's default (random) initialisation
        model = ETSTPM(teacher, student).to(device)
        train_ds = data.AnomalyDataset(cfg.data, cfg.category, "train", cfg.image_size, samples=train_part,
                                       cache=True)
        ckpt = None
        if cfg.resume and (run_dir / CHECKPOINT).is_file():
            # Our own file (numpy/python RNG state inside), hence weights_only=False. Loaded on the CPU: RNG states
            # must stay CPU tensors; the optimizer and student state are moved to the parameters' device when loaded.
            ckpt = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
            log.info("checkpoint at epoch %d", ckpt["epoch"])

        def on_epoch(rec: dict) -> None:
            meta.setdefault("history", {})["student"] = meta.get("history", {}).get("student", []) + [rec]
            meta["epochs_done"] = rec["epoch"]
            write_meta(run_dir, meta)

        t0 = time.perf_counter()
        history = train_student(model, train_ds, cfg.student, device, run_dir, cfg.seed, checkpoint=ckpt,
                                on_epoch=on_epoch, show_progress=cfg.progress, ctx=ctx)
        if not ctx.is_main:
            return
        meta.setdefault("history", {})["student"] = history
        meta["epochs_done"] = len(history)
        walls = [h["wall_s"] for h in history]
        meta.setdefault("wall_time_s", {})["student"] = round(sum(walls), 3)
        meta["wall_time_s"]["student_per_epoch_mean"] = round(sum(walls) / len(walls), 3) if walls else None
        meta["wall_time_s"]["student_this_session"] = round(time.perf_counter() - t0, 3)
        save_torch(model.student.state_dict(), run_dir / STUDENT)

    def load(self, run_dir: Path, teacher: FeatureExtractor, device: str | torch.device) -> nn.Module:
        return ETSTPM(teacher, load_pyramid(run_dir / STUDENT, device))

    def manifest(self, meta: dict, bank_fp16: bool) -> dict:
        return {}


STPM = StpmMethod()
