"""`etstpm train`: teacher weights -> ET fine-tuning -> student distillation -> calibration, into a run folder."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import __version__, data, distributed
from .backbone import FeatureExtractor
from .distributed import SINGLE, Dist
from .errors import ConfigError
from .finetune import PROTOCOL_LEAKAGE_FREE, PROTOCOL_PAPER, FinetuneConfig, build_task, finetune, resolve_mode
from .methods import METHODS, Method, get_method, method_name
from .methods.membank.fit import MembankConfig
from .methods.stpm.student import StudentConfig
from .run import LOG, RUN_FORMAT, TEACHER, RunError, read_meta, save_torch, write_meta
from .weights import load_resnet18

log = logging.getLogger("etstpm")


# What `etstpm train` fits without --method: the memory bank (docs/training.md, "Choosing a method", has the
# benchmark behind this choice).
DEFAULT_METHOD = "membank"


@dataclass
class TrainConfig:
    data: str
    category: str
    weights: str
    out: str
    method: str = DEFAULT_METHOD  # a name in etstpm.methods.METHODS
    image_size: int = 256
    seed: int = 0
    device: str = "auto"
    holdout: float = 0.1  # fraction of train/good kept out of training, for calibration
    max_train_images: int | None = None  # cap for quick checks; None = all
    student: StudentConfig = field(default_factory=StudentConfig)
    membank: MembankConfig = field(default_factory=MembankConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    resume: bool = False
    calibrate: bool = True
    frr: float = 0.01  # target false-reject rate on new good parts
    confidence: float = 0.9  # ... kept with this probability (etstpm.conformal)
    # Where the calibration's good-image scores come from: auto = the method's default (kfold for membank, holdout for
    # stpm: docs/training.md, Calibration); calib_data, when given, replaces both (a separate folder of good images).
    calibration: str = "auto"
    folds: int = 5
    calib_data: str | None = None
    progress: bool = True

    def method_impl(self) -> Method:
        return get_method(self.method)

    def calibration_source(self) -> str:
        if self.calib_data:
            return "folder"
        if self.calibration == "auto":
            return self.method_impl().default_calibration
        return self.calibration


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"--device {name}: {e}") from e


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _attach_log(run_dir: Path) -> logging.Handler:
    h = logging.FileHandler(run_dir / LOG)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("etstpm").addHandler(h)
    logging.getLogger("etstpm").setLevel(logging.INFO)
    return h


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Settings a resumed run must share with the original (anything else would silently mix two trainings).
_RESUME_KEYS = ("method", "data", "category", "image_size", "seed", "holdout", "max_train_images")


def train(cfg: TrainConfig) -> Path:
    """Run the whole pipeline; returns the run folder. Safe to interrupt: `resume=True` continues."""
    run_dir = Path(cfg.out)
    device = resolve_device(cfg.device)
    if cfg.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.image_size < 32:
        raise ConfigError(f"--image-size must be at least 32, got {cfg.image_size}")
    if not 0.0 <= cfg.holdout < 1.0:
        raise ConfigError(f"--holdout must be in [0, 1), got {cfg.holdout}")
    from .calibrate import check_targets, folder_samples  # late import: calibrate imports run/train helpers

    check_targets(cfg.frr, cfg.confidence)
    if cfg.calibration not in ("auto", "holdout", "kfold"):
        raise ConfigError(f"--calibration must be auto, holdout or kfold, got {cfg.calibration!r}")
    cfg.method_impl().check_config(cfg)
    if cfg.folds < 2:
        raise ConfigError(f"--folds must be >= 2, got {cfg.folds}")
    if cfg.calib_data:
        folder_samples(cfg.calib_data)  # a missing or empty folder fails now, not after the fit
    if cfg.student.ema_epochs < 0:
        raise ConfigError(f"--ema-epochs must be >= 0 (0 = off), got {cfg.student.ema_epochs}")
    if run_dir.exists() and (run_dir / "run.json").exists() and not cfg.resume:
        raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if cfg.resume and not (run_dir / "run.json").exists():
        raise RunError(f"--resume: no run to continue in {run_dir}")
    ctx = distributed.from_env()
    if not ctx.enabled:
        return _train_logged(cfg, run_dir, device, SINGLE)
    # torchrun: every rank has passed the checks above before rank 0 writes anything (barrier in setup's group
    # creation and below); only rank 0 writes the run folder and its log.
    device = distributed.setup(ctx, device)
    if not ctx.is_main:
        cfg = replace(cfg, progress=False)  # one progress display: rank 0's
    try:
        distributed.barrier(ctx)
        if ctx.is_main:
            return _train_logged(cfg, run_dir, device, ctx)
        _train(cfg, run_dir, device, ctx)
        return run_dir
    finally:
        distributed.shutdown()


def _train_logged(cfg: TrainConfig, run_dir: Path, device: torch.device, ctx: Dist) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _attach_log(run_dir)
    try:
        return _train(cfg, run_dir, device, ctx)
    finally:
        logging.getLogger("etstpm").removeHandler(handler)
        handler.close()


def _train(cfg: TrainConfig, run_dir: Path, device: torch.device, ctx: Dist = SINGLE) -> Path:
    seed_everything(cfg.seed)
    method = cfg.method_impl()
    if cfg.resume:
        meta = read_meta(run_dir)
        for k in _RESUME_KEYS:
            given = getattr(cfg, k)
            stored = method_name(meta["config"]) if k == "method" else meta["config"].get(k)
            if not (data.same_folder(given, stored) if k == "data" else given == stored):
                raise RunError(f"--resume: {k} differs from the run's ({given!r} vs {stored!r})")
        # A longer --epochs extends the run; the student hyper-parameters are the run's.
        meta["epochs"] = cfg.student.epochs
        meta["config"]["student"]["epochs"] = cfg.student.epochs
        meta["status"] = method.fit_status
        log.info("resuming %s (epochs -> %d)", run_dir, cfg.student.epochs)
    else:
        meta = {"format": RUN_FORMAT, "etstpm_version": __version__, "torch_version": torch.__version__,
                "created": _now(), "status": "started", "method": cfg.method, "category": cfg.category,
                "data": cfg.data,
                "image_size": cfg.image_size, "epochs": method.planned_epochs(cfg),
                "seed": cfg.seed,
                "device": str(device), "config": _config_dict(cfg), "calibration": None}

    # Data: train/good minus the calibration hold-out (the hold-out never trains anything).
    all_train = data.train_samples(cfg.data, cfg.category)
    data.validate(all_train)  # fail now on a bad file, not after hours of training (hold-out included)
    if cfg.calibrate and cfg.calibration_source() == "kfold" and len(all_train) < 2:
        raise ConfigError(f"k-fold calibration needs at least 2 train/good images, {cfg.category} has "
                          f"{len(all_train)}; give good images with --calib-data DIR")
    source = cfg.calibration_source()
    # Only the hold-out source keeps images out of the fit: k-fold scores every image without its fold, and a
    # calibration folder brings its own images.
    train_part, holdout = data.split_holdout(all_train, cfg.holdout if source == "holdout" else 0.0, cfg.seed)
    meta["calibration_source"] = source
    meta["calib_data"] = cfg.calib_data
    if cfg.max_train_images is not None:
        train_part = train_part[: cfg.max_train_images]
        holdout = holdout[: max(1, cfg.max_train_images // 4)] if holdout else holdout
    meta["train_images"] = len(train_part)
    meta["holdout_images"] = [Path(s.path).name for s in holdout]
    if ctx.enabled:
        method.check_data(cfg, len(train_part), ctx.world)
        meta["distributed"] = {"world_size": ctx.world, "backend": "nccl" if device.type == "cuda" else "gloo",
                               "global_batch_size": cfg.student.batch_size,
                               "batchnorm": "SyncBatchNorm" if device.type == "cuda" else "GlobalBatchNorm2d"}

    # Teacher.
    if cfg.resume and (run_dir / TEACHER).is_file():
        teacher = FeatureExtractor()
        teacher.load_state_dict(torch.load(run_dir / TEACHER, map_location="cpu", weights_only=True))
        teacher.to(device)
    else:
        # Every rank fine-tunes the same way (same seed; the fine-tuning itself is not split), then takes rank 0's
        # weights, so all ranks hold bit-identical teachers even where GPU kernels are not deterministic.
        teacher = _make_teacher(cfg, meta, train_part, device)
        distributed.broadcast_module(teacher, ctx)
        if ctx.is_main:
            save_torch(teacher.state_dict(), run_dir / TEACHER)
            meta["status"] = method.fit_status
            write_meta(run_dir, meta)

    seed_everything(cfg.seed)  # the fit starts from the same random state whether or not the teacher was fine-tuned
    method.fit(cfg, run_dir, meta, teacher, train_part, device, ctx)
    if not ctx.is_main:
        return run_dir  # rank 0 alone finishes the run folder and calibrates
    meta["status"] = "trained"
    meta["finished"] = _now()
    write_meta(run_dir, meta)

    if cfg.calibrate and (holdout or source != "holdout"):
        from .calibrate import calibrate_run

        calibrate_run(run_dir, frr=cfg.frr, confidence=cfg.confidence, device=str(device),
                      show_progress=cfg.progress)
    elif cfg.calibrate:
        log.warning("no hold-out images (--holdout 0): run not calibrated; run `etstpm calibrate` with a labelled set")
    return run_dir


def _make_teacher(cfg: TrainConfig, meta: dict, train_part: list[data.Sample],
                  device: torch.device) -> FeatureExtractor:
    resnet, winfo = load_resnet18(cfg.weights)
    meta["weights"] = winfo | {"given": cfg.weights}
    teacher = FeatureExtractor(resnet).to(device)
    ft = cfg.finetune
    if cfg.method_impl().keeps_imagenet_teacher and ft.mode == "auto":
        # The memory bank keeps the ImageNet teacher unless asked: docs/results.md ("The ET question") measured it.
        ft = replace(ft, mode="none")
    mode, pairs = resolve_mode(ft, cfg.data, cfg.category)
    meta["finetune"] = mode
    meta["protocol"] = PROTOCOL_PAPER if cfg.finetune.paper_protocol else PROTOCOL_LEAKAGE_FREE
    meta.setdefault("wall_time_s", {})
    if mode == "none":
        meta["finetune_details"] = {"task": "none"}
        meta["wall_time_s"]["finetune"] = 0.0
        log.info("teacher: ImageNet weights as is (no fine-tuning)")
        return teacher
    dataset, classes, desc = build_task(cfg.finetune, mode, pairs, train_part, cfg.image_size)
    log.info("teacher fine-tuning: %s, %d images, classes %s", mode, len(dataset), classes)
    t0 = time.perf_counter()
    hist = finetune(teacher, dataset, len(classes), cfg.finetune, device, cfg.seed, show_progress=cfg.progress)
    meta["wall_time_s"]["finetune"] = round(time.perf_counter() - t0, 3)
    meta["finetune_details"] = desc
    meta.setdefault("history", {})["finetune"] = hist
    return teacher


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d.pop("resume", None)
    d.pop("progress", None)
    return d
