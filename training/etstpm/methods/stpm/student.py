"""Student distillation (STPM, torchvision-reference style plain loop): random-init ResNet-18 pyramid learns to
reproduce the frozen teacher's layer1..layer3 features on normal images."""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ... import distributed
from ...distributed import SINGLE, Dist, RankBatchSampler
from ...ema import WeightAverage
from ...errors import ConfigError
from ...run import save_torch
from .loss import STPMLoss
from .model import ETSTPM

# Latest student epoch + optimizer + RNG state, for --resume (docs/training.md, run folder).
CHECKPOINT = "checkpoint.pt"

log = logging.getLogger(__name__)


@dataclass
class StudentConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    num_workers: int = 0
    # "constant" is the paper's rate. "cosine" decays it to 0 over the run (so the last epoch is a settled student, not
    # one snapshot of a still-jumping trajectory); measured on grid it did not help, so it is an option, not the
    # default (docs/results.md, "STPM that converges").
    schedule: str = "constant"
    # > 0: the saved student is an exponential moving average of its weights with this half-life in epochs
    # (etstpm/ema.py), not the last step's weights. 0 = off (the paper).
    ema_epochs: float = 0.0
    # Keep the frozen teacher's features of every training image after the first epoch (no augmentation, so they
    # never change): saves the teacher forward pass, about a quarter of each later epoch. None = when they fit in
    # TEACHER_CACHE_LIMIT bytes.
    cache_teacher: bool | None = None


TEACHER_CACHE_LIMIT = 4 << 30


def teacher_cache_bytes(n_images: int, image_size: int) -> int:
    """float32 layer1..3 features of ResNet-18: 64*(S/4)^2 + 128*(S/8)^2 + 256*(S/16)^2 = 7*S^2 values per image."""
    return n_images * 7 * image_size * image_size * 4


class TeacherFeatureCache:
    """Teacher features per dataset index, computed on first use."""

    def __init__(self) -> None:
        self._feats: dict[int, list[torch.Tensor]] = {}

    def __call__(self, model: ETSTPM, x: torch.Tensor, index: torch.Tensor) -> list[torch.Tensor]:
        idx = index.tolist()
        if all(i in self._feats for i in idx):
            return [torch.stack([self._feats[i][lvl] for i in idx]) for lvl in range(3)]
        with torch.no_grad():
            feats = model.teacher(x)
        for j, i in enumerate(idx):
            self._feats[i] = [f[j].clone() for f in feats]
        return feats


SCHEDULES = ("constant", "cosine")


def lr_at(cfg: StudentConfig, step: int, total: int) -> float:
    """Learning rate for optimisation step `step` of `total` (a pure function of the step, so --resume needs no
    scheduler state; a resume that raises --epochs stretches the remaining decay)."""
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ValueError(f"unknown learning-rate schedule {cfg.schedule!r} (choose from {', '.join(SCHEDULES)})")


def make_optimizer(model: ETSTPM, cfg: StudentConfig) -> torch.optim.SGD:
    return torch.optim.SGD(model.student.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_student(
    model: ETSTPM,
    dataset: Dataset,
    cfg: StudentConfig,
    device: torch.device,
    run_dir: Path,
    seed: int,
    checkpoint: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    show_progress: bool = True,
    ctx: Dist = SINGLE,
) -> list[dict]:
    """Train model.student for cfg.epochs (continuing from `checkpoint` if given), checkpointing every epoch.

    Returns the per-epoch history (epoch, loss, wall_s). `on_epoch(record)` runs after each epoch's checkpoint.
    With `ctx.enabled` (torchrun), the student trains under DistributedDataParallel (etstpm.distributed); only rank 0
    writes the checkpoint and calls `on_epoch`.
    """
    loss_fn = STPMLoss()
    if ctx.enabled:
        # BatchNorm statistics over the whole global batch, as one process computes them.
        model.student = distributed.global_batchnorm(model.student, device)
    optimizer = make_optimizer(model, cfg)
    n_images = len(dataset)
    steps = math.ceil(n_images / cfg.batch_size)  # global steps per epoch (the schedule's unit)
    ema = WeightAverage(model.student, cfg.ema_epochs * steps) if cfg.ema_epochs > 0 else None
    generator = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    start = 0
    if checkpoint is not None:
        model.student.load_state_dict(checkpoint["student"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        generator.set_state(checkpoint["generator"])
        set_rng_state(checkpoint["rng"])
        history = list(checkpoint["history"])
        start = int(checkpoint["epoch"])
        if ema is not None:
            if checkpoint.get("ema") is None:
                raise ConfigError("--ema-epochs on a run trained without it: an average cannot start mid-run")
            ema.load_state_dict(checkpoint["ema"])
    use_cache = cfg.cache_teacher
    if use_cache is None:
        size = int(dataset[0]["image"].shape[-1])
        use_cache = teacher_cache_bytes(len(dataset), size) <= TEACHER_CACHE_LIMIT
    cache = TeacherFeatureCache() if use_cache else None
    log.info("teacher feature cache: %s", "on" if use_cache else "off")
    if ctx.enabled:
        loader = DataLoader(dataset, batch_sampler=RankBatchSampler(n_images, cfg.batch_size, ctx, generator),
                            generator=generator, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
        student = DistributedDataParallel(model.student, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                            num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
        student = model.student
    bar = tqdm(total=cfg.epochs * steps, initial=start * steps, desc="student", unit="batch",
               disable=not (show_progress and ctx.is_main), dynamic_ncols=True)
    try:
        for epoch in range(start, cfg.epochs):
            model.train()  # student BN trains normally; ETSTPM.train keeps the teacher in eval mode
            t0 = time.perf_counter()
            loss_sum, n = 0.0, 0
            for step, batch in enumerate(loader, start=epoch * steps):
                lr = lr_at(cfg, step, cfg.epochs * steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = batch["image"].to(device, non_blocking=True)
                if cache is not None:
                    t_feats = cache(model, x, batch["index"])
                else:
                    with torch.no_grad():
                        t_feats = model.teacher(x)
                loss = loss_fn(t_feats, student(x))
                optimizer.zero_grad(set_to_none=True)
                if ctx.enabled:
                    # DDP averages the ranks' gradients; weighting each rank's mean loss by its share of the global
                    # batch (n_r * world / N) makes that average the gradient of the global batch's mean loss.
                    global_n = min(cfg.batch_size, n_images - (step - epoch * steps) * cfg.batch_size)
                    (loss * (len(x) * ctx.world / global_n)).backward()
                else:
                    loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update(model.student)
                loss_sum += loss.item() * len(x)
                n += len(x)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss.item():.4f}")
            loss_sum, n = distributed.all_sum([loss_sum, float(n)], ctx)  # the global batch's mean, on every rank
            rec = {"epoch": epoch + 1, "loss": loss_sum / n, "lr_last": lr,
                   "wall_s": round(time.perf_counter() - t0, 3)}
            history.append(rec)
            if not ctx.is_main:
                continue
            save_torch({"epoch": epoch + 1, "student": model.student.state_dict(),
                        "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                        "rng": rng_state(), "history": history,
                        "ema": ema.state_dict() if ema is not None else None}, run_dir / CHECKPOINT)
            msg = f"student epoch {epoch + 1}/{cfg.epochs}: loss {rec['loss']:.5f}, {rec['wall_s']:.1f} s"
            log.info(msg)
            if show_progress:
                bar.write(msg)
            if on_epoch is not None:
                on_epoch(rec)
    finally:
        bar.close()
    if ema is not None:
        model.student.load_state_dict(ema.averaged(model.student))  # the checkpoint keeps the raw weights
    model.eval()
    return history
