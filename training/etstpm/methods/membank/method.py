"""The memory bank as a method: no training, a bank of the training images' patch features (fit.py), scored by
model.py; calibrated by default on leave-fold-out scores (kfold.py)."""
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
from ...errors import ConfigError, RunError
from ...run import save_torch
from .fit import MembankConfig, fit_bank
from .kfold import leave_fold_out_scores
from .model import MemoryBankModel

if TYPE_CHECKING:
    from ...train import TrainConfig

log = logging.getLogger("etstpm")

BANK = "bank.pt"  # memory bank of normal patch features, its projection and scoring settings


def _feature_dim(s: str) -> int | None:
    """--feature-dim: 'auto' -> None, else a width >= 0 (0 = full)."""
    if s == "auto":
        return None
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a width >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be auto or a width >= 0, got {v}")
    return v


class MembankMethod:
    name = "membank"
    model_name = "membank"
    config_field = "membank"
    default_calibration = "kfold"
    fit_status = "membank"
    keeps_imagenet_teacher = True
    int8_warning = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("memory bank (--method membank)")
        g.add_argument("--feature-layers", nargs="+", default=list(MembankConfig.layers), metavar="LAYER",
                       help="pyramid levels concatenated into patch features (layer1 layer2 layer3)")
        g.add_argument("--aggregate", type=int, default=MembankConfig.aggregate,
                       help="odd window of the local average around each patch (1 = none)")
        g.add_argument("--coreset-ratio", type=float, default=MembankConfig.coreset_ratio,
                       help="share of all training patches kept in the bank (greedy k-center coreset)")
        g.add_argument("--coreset-min", type=positive_int, default=MembankConfig.coreset_min,
                       help="smallest bank size (a small training set keeps this many patches, or all it has)")
        g.add_argument("--feature-dim", type=_feature_dim, default=None, metavar="auto|0|N",
                       help="bank width: auto (default) = the full width unless bank rows x width would exceed "
                            "--nn-budget, then the widest PCA of the training patches that fits; 0 = always full; "
                            "N = a PCA to N dimensions (docs/results.md, 'Bank size and width')")
        g.add_argument("--nn-budget", type=positive_int, default=MembankConfig.nn_budget,
                       help="multiply-adds a patch may spend on the nearest-neighbour search under --feature-dim auto")
        g.add_argument("--smooth-sigma", type=float, default=MembankConfig.sigma,
                       help="Gaussian smoothing of the anomaly map, in pixels (0 = none)")
        g.add_argument("--score-border", type=int, default=MembankConfig.score_border,
                       help="image score: band of this many patch strides (8 px each at layer2) at each edge of the "
                            "image left out of the score, not of the map (docs/results.md)")
        g.add_argument("--score-top", type=float, default=MembankConfig.score_top,
                       help="image score: 0 = maximum of the map inside the border; else the mean of this share of its "
                            "largest values")

    def config_from_args(self, args: argparse.Namespace) -> MembankConfig:
        cfg = MembankConfig(layers=tuple(args.feature_layers), aggregate=args.aggregate,
                            coreset_ratio=args.coreset_ratio, coreset_min=args.coreset_min, sigma=args.smooth_sigma,
                            score_top=args.score_top, score_border=args.score_border, feature_dim=args.feature_dim,
                            nn_budget=args.nn_budget)
        try:
            cfg.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from e
        return cfg

    def check_config(self, cfg: TrainConfig) -> None:
        pass  # every calibration source works with a bank

    def check_data(self, cfg: TrainConfig, train_images: int, world: int) -> None:
        pass  # a rank without images sends no features (fit.fit_bank)

    def planned_epochs(self, cfg: TrainConfig) -> int:
        return 0

    def fit(self, cfg: TrainConfig, run_dir: Path, meta: dict, teacher: FeatureExtractor,
            train_part: list[data.Sample], device: torch.device, ctx: Dist) -> None:
        """Memory bank of the training images' patch features (no training; a --resume simply refits it)."""
        ds = data.AnomalyDataset(cfg.data, cfg.category, "train", cfg.image_size, samples=train_part)
        t0 = time.perf_counter()
        kfold = cfg.calibration_source() == "kfold"
        mb = cfg.membank
        fitted = fit_bank(teacher, ds, mb, device, cfg.seed, show_progress=cfg.progress and ctx.is_main, ctx=ctx,
                          keep_features=kfold)
        if fitted is None:
            return  # not rank 0: its features went to rank 0
        meta.pop("kfold", None)
        if kfold:
            assert fitted.features is not None
            # A training set smaller than the fold count is scored leave-one-out (docs/training.md, Calibration).
            folds = min(cfg.folds, len(train_part))
            fs = leave_fold_out_scores(teacher, fitted.features, len(train_part), cfg.image_size, mb, device,
                                       cfg.seed, folds, show_progress=cfg.progress)
            fitted.features = None
            meta["kfold"] = fs.info | {"low": fs.low,
                                       "scores": {Path(s.path).name: float(v) for s, v in zip(train_part, fs.scores)},
                                       "fold": {Path(s.path).name: int(v) for s, v in zip(train_part, fs.fold)}}
        info = fitted.info
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

    def load(self, run_dir: Path, teacher: FeatureExtractor, device: str | torch.device) -> nn.Module:
        path = run_dir / BANK
        if not path.is_file():
            raise RunError(f"missing {BANK} in {run_dir} (memory bank not fitted? continue with --resume)")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return MemoryBankModel(teacher, saved["bank"], layers=tuple(saved["layers"]),
                               aggregate=int(saved["aggregate"]), sigma=float(saved["sigma"]),
                               score_top=float(saved.get("score_top", 0.0)),
                               score_border=int(saved.get("score_border", 0)), projection=saved.get("projection"))

    def manifest(self, meta: dict, bank_fp16: bool) -> dict:
        mb = meta.get("membank") or {}
        width = mb.get("feature_width", mb.get("dim"))  # runs fitted before projections existed: full width
        return {"membank": {"bank_size": mb.get("bank_size"), "dim": mb.get("dim"), "layers": mb.get("layers"),
                            "aggregate": mb.get("aggregate"), "sigma": mb.get("sigma"),
                            "score_top": mb.get("score_top", 0.0), "score_border": mb.get("score_border", 0),
                            "coreset_ratio": mb.get("coreset_ratio"), "feature_width": width,
                            "projection": "pca" if width != mb.get("dim") else None,
                            "patches": mb.get("patches"), "bank_dtype": "float16" if bank_fp16 else "float32"}}


MEMBANK = MembankMethod()
