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
from .membank import MembankConfig, fit_bank
from .membank.kfold import leave_fold_out_scores
from .model import ETSTPM
from .run import (
    BANK,
    CHECKPOINT,
    LOG,
    METHODS,
    RUN_FORMAT,
    STUDENT,
    TEACHER,
    RunError,
    read_meta,
    save_torch,
    write_meta,
)
from .student import StudentConfig, train_student
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
    method: str = DEFAULT_METHOD  # stpm (student distillation) | membank (nearest-neighbour memory bank)
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
    # Where the calibration's good-image scores come from: auto = kfold for membank, holdout for stpm (docs/training.md,
    # Calibration); calib_data, when given, replaces both (a separate folder of good images).
    calibration: str = "auto"
    folds: int = 5
    calib_data: str | None = None
    progress: bool = True

    def calibration_source(self) -> str:
        if self.calib_data:
            return "folder"
        if self.calibration == "auto":
            return "kfold" if self.method == "membank" else "holdout"
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
    if cfg.calibration_source() == "kfold" and cfg.method != "membank":
        # One student per fold would multiply the training time by the fold count: STPM keeps the hold-out.
        raise ConfigError("--calibration kfold is for --method membank (an STPM run would need a student per fold); "
                          "use --calibration holdout or --calib-data DIR")
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
    if cfg.resume:
        meta = read_meta(run_dir)
        for k in _RESUME_KEYS:
            given, stored = getattr(cfg, k), meta["config"].get(k, "stpm" if k == "method" else None)
            if not (data.same_folder(given, stored) if k == "data" else given == stored):
                raise RunError(f"--resume: {k} differs from the run's ({given!r} vs {stored!r})")
        # A longer --epochs extends the run; the student hyper-parameters are the run's.
        meta["epochs"] = cfg.student.epochs
        meta["config"]["student"]["epochs"] = cfg.student.epochs
        meta["status"] = "student" if cfg.method == "stpm" else "membank"
        log.info("resuming %s (epochs -> %d)", run_dir, cfg.student.epochs)
    else:
        meta = {"format": RUN_FORMAT, "etstpm_version": __version__, "torch_version": torch.__version__,
                "created": _now(), "status": "started", "method": cfg.method, "category": cfg.category,
                "data": cfg.data,
                "image_size": cfg.image_size, "epochs": cfg.student.epochs if cfg.method == "stpm" else 0,
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
        if cfg.method == "stpm" and len(train_part) < ctx.world:
            raise ConfigError(f"{ctx.world} processes but only {len(train_part)} training images")
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
            meta["status"] = "student" if cfg.method == "stpm" else "membank"
            write_meta(run_dir, meta)

    if cfg.method == "membank":
        _fit_membank(cfg, run_dir, meta, teacher, train_part, device, ctx)
    else:
        _train_student(cfg, run_dir, meta, teacher, train_part, device, ctx)
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


def _fit_membank(cfg: TrainConfig, run_dir: Path, meta: dict, teacher: FeatureExtractor,
                 train_part: list[data.Sample], device: torch.device, ctx: Dist = SINGLE) -> None:
    """Memory bank of the training images' patch features (no training; a --resume simply refits it)."""
    seed_everything(cfg.seed)
    ds = data.AnomalyDataset(cfg.data, cfg.category, "train", cfg.image_size, samples=train_part)
    t0 = time.perf_counter()
    kfold = cfg.calibration_source() == "kfold"
    fitted = fit_bank(teacher, ds, cfg.membank, device, cfg.seed, show_progress=cfg.progress and ctx.is_main, ctx=ctx,
                      keep_features=kfold)
    if fitted is None:
        return  # not rank 0: its features went to rank 0
    meta.pop("kfold", None)
    if kfold:
        assert fitted.features is not None
        # A training set smaller than the fold count is scored leave-one-out (docs/training.md, Calibration).
        folds = min(cfg.folds, len(train_part))
        fs = leave_fold_out_scores(teacher, fitted.features, len(train_part), cfg.image_size, cfg.membank, device,
                                   cfg.seed, folds, show_progress=cfg.progress)
        fitted.features = None
        meta["kfold"] = fs.info | {"low": fs.low,
                                   "scores": {Path(s.path).name: float(v) for s, v in zip(train_part, fs.scores)},
                                   "fold": {Path(s.path).name: int(v) for s, v in zip(train_part, fs.fold)}}
    info = fitted.info
    mb = cfg.membank
    save_torch({"bank": fitted.bank, "projection": fitted.projection, "layers": list(mb.layers),
                "aggregate": mb.aggregate, "sigma": mb.sigma, "score_top": mb.score_top,
                "score_border": mb.score_border}, run_dir / BANK)
    meta["membank"] = info | {"layers": list(mb.layers), "aggregate": mb.aggregate, "sigma": mb.sigma,
                              "score_top": mb.score_top, "score_border": mb.score_border,
                              "coreset_ratio": mb.coreset_ratio, "coreset_min": mb.coreset_min,
                              "proj_dim": mb.proj_dim, "feature_dim": mb.feature_dim,
                              "nn_budget": mb.nn_budget}
    meta.setdefault("wall_time_s", {})["membank"] = round(time.perf_counter() - t0, 3)  # k-fold banks included
    meta["wall_time_s"]["kfold"] = meta["kfold"]["wall_time_s"] if kfold else None
    meta["epochs_done"] = 0
    msg = (f"memory bank: {info['bank_size']} of {info['patches']} patches, dim {info['dim']} "
           f"(features {info['features_s']:.1f} s, coreset {info['coreset_s']:.1f} s)")
    log.info(msg)
    if cfg.progress:
        print(msg)


def _train_student(cfg: TrainConfig, run_dir: Path, meta: dict, teacher: FeatureExtractor,
                   train_part: list[data.Sample], device: torch.device, ctx: Dist = SINGLE) -> None:
    seed_everything(cfg.seed)
    student = FeatureExtractor().to(device)  # torchvision's default (random) initialisation
    model = ETSTPM(teacher, student).to(device)
    train_ds = data.AnomalyDataset(cfg.data, cfg.category, "train", cfg.image_size, samples=train_part, cache=True)
    ckpt = None
    if cfg.resume and (run_dir / CHECKPOINT).is_file():
        # Our own file (numpy/python RNG state inside), hence weights_only=False. Loaded on the CPU: RNG states must
        # stay CPU tensors; the optimizer and student state are moved to the parameters' device when loaded.
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


def _make_teacher(cfg: TrainConfig, meta: dict, train_part: list[data.Sample],
                  device: torch.device) -> FeatureExtractor:
    resnet, winfo = load_resnet18(cfg.weights)
    meta["weights"] = winfo | {"given": cfg.weights}
    teacher = FeatureExtractor(resnet).to(device)
    ft = cfg.finetune
    if cfg.method == "membank" and ft.mode == "auto":
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
