"""Fitting a memory bank: patch features of every normal training image, then a greedy coreset of them."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ...backbone import FeatureExtractor
from ...distributed import SINGLE, Dist, batch_shard, gather_rows
from .coreset import greedy_coreset
from .features import PatchFeatures

log = logging.getLogger(__name__)


@dataclass
class MembankConfig:
    layers: tuple[str, ...] = ("layer2", "layer3")
    aggregate: int = 3  # local neighbourhood (odd window) averaged around each patch
    # Share of all training patches kept in the bank. 2 %, not PatchCore's 1 %: measured better on MTD and screw, level
    # on the grid subset and hazelnut_toy (docs/results.md, "Bank size and width").
    coreset_ratio: float = 0.02
    coreset_min: int = 2048  # floor on the bank size, so a small training set keeps enough patches
    proj_dim: int = 128  # random projection used only to select the coreset (PatchCore)
    # Bank width: None = auto (the full width, or a PCA of the training patches narrow enough that bank rows x width
    # stays within nn_budget); 0 = always the full width; N = a PCA to N dimensions.
    feature_dim: int | None = None
    # Multiply-adds a patch may spend on the nearest-neighbour search under feature_dim auto: 1M, 56 % of what a
    # ResNet-18 student (conv1-layer3) spends a layer2 patch (1.79M), so a bank model stays cheaper than STPM's
    # teacher + student per frame (measured: docs/results.md).
    nn_budget: int = 1_000_000
    sigma: float = 4.0  # Gaussian smoothing of the upsampled map (PatchCore / anomalib)
    score_border: int = 2  # image score: patch strides at each edge of the image left out (not of the map)
    score_top: float = 0.0  # image score: 0 = max of the map (inside the border), else mean of this largest share
    batch_size: int = 16

    def validate(self) -> None:
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise ValueError(f"coreset ratio must be in (0, 1], got {self.coreset_ratio}")
        if self.feature_dim is not None and self.feature_dim < 0:
            raise ValueError(f"feature dim must be >= 0 (0 = full width), got {self.feature_dim}")
        if self.nn_budget < 1:
            raise ValueError(f"nearest-neighbour budget must be >= 1 multiply-add a patch, got {self.nn_budget}")
        if self.coreset_min < 1:
            raise ValueError(f"coreset floor must be >= 1, got {self.coreset_min}")
        if self.sigma < 0:
            raise ValueError(f"smoothing sigma must be >= 0, got {self.sigma}")
        if self.score_border < 0:
            raise ValueError(f"image-score border must be >= 0 patches, got {self.score_border}")
        if not 0.0 <= self.score_top <= 1.0:
            raise ValueError(f"image-score share must be in [0, 1], got {self.score_top}")
        width = PatchFeatures(self.layers, self.aggregate).dim  # raises on a bad layer name or window
        if self.feature_dim is not None and self.feature_dim > width:
            raise ValueError(f"feature dim {self.feature_dim} is wider than the patch features ({width} for "
                             f"{', '.join(self.layers)})")


@dataclass
class FittedBank:
    bank: torch.Tensor  # [M, D] patch features (projected when `projection` is set)
    projection: torch.Tensor | None  # [C, D] PCA directions, or None (full width)
    info: dict
    features: torch.Tensor | None = None  # [N_images * h * w, C] training patches, when asked for (k-fold scoring)


MIN_AUTO_WIDTH = 32  # narrower loses too much (MTD, 1,024 rows: 0.907 at full width, 0.747 at PCA 64)


def bank_size(n_patches: int, cfg: MembankConfig) -> int:
    return min(n_patches, max(cfg.coreset_min, int(round(cfg.coreset_ratio * n_patches))))


def bank_width(rows: int, full: int, cfg: MembankConfig) -> int:
    """The bank's width: cfg.feature_dim, or under auto the full width while rows x width fits the budget, else the
    widest PCA that does (not under MIN_AUTO_WIDTH)."""
    if cfg.feature_dim is not None:
        return full if cfg.feature_dim == 0 else min(cfg.feature_dim, full)
    return min(full, max(MIN_AUTO_WIDTH, cfg.nn_budget // rows))


@torch.no_grad()
def extract_patches(teacher: FeatureExtractor, dataset: Dataset, cfg: MembankConfig, device: torch.device,
                    show_progress: bool = True) -> torch.Tensor:
    """[N_images * h * w, C] patch features of every image in `dataset` (CPU float32)."""
    patches = PatchFeatures(cfg.layers, cfg.aggregate)
    teacher.eval()
    out = []
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=0)
    for batch in tqdm(loader, desc="membank features", unit="batch", disable=not show_progress, dynamic_ncols=True):
        f = patches(teacher(batch["image"].to(device)))
        out.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).float().cpu())
    return torch.cat(out)


def pca_directions(x: torch.Tensor, dim: int, chunk: int = 1 << 16) -> torch.Tensor:
    """[C, dim] leading principal directions of the rows of x [N, C] (covariance summed in float64, in chunks).

    Distances between projected patches approximate the full-width ones; no centring is needed in the model, since
    a difference of two projected vectors does not depend on the mean.
    """
    mean = x.mean(0, dtype=torch.float64)
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[0], chunk):
        c = x[s:s + chunk].double() - mean
        cov += c.t() @ c
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    return vecs[:, -dim:].flip(1).float().contiguous()


def fit_bank(teacher: FeatureExtractor, dataset: Dataset, cfg: MembankConfig, device: torch.device, seed: int,
             show_progress: bool = True, ctx: Dist = SINGLE, keep_features: bool = False) -> FittedBank | None:
    """The bank (and its projection, with cfg.feature_dim) for the normal images of `dataset`.

    Under torchrun (`ctx.enabled`) each rank extracts its whole batches (distributed.batch_shard), rank 0 gathers
    them in order, so it holds the single-process feature matrix, and selects the bank; other ranks return None.
    """
    cfg.validate()
    t0 = time.perf_counter()
    if ctx.enabled:
        shard = Subset(dataset, list(batch_shard(len(dataset), cfg.batch_size, ctx)))
        feats = gather_rows(extract_patches(teacher, shard, cfg, device, show_progress) if len(shard)
                            else torch.empty(0, PatchFeatures(cfg.layers, cfg.aggregate).dim), ctx)
        if feats is None:
            return None
    else:
        feats = extract_patches(teacher, dataset, cfg, device, show_progress)
    t_feat = time.perf_counter() - t0
    fitted = select_bank(feats, cfg, device, seed, show_progress)
    fitted.info["features_s"] = round(t_feat, 3)
    fitted.features = feats if keep_features else None
    log.info("memory bank: %d of %d patches (dim %d of %d); features %.1f s, coreset %.1f s", fitted.info["bank_size"],
             feats.shape[0], fitted.bank.shape[1], feats.shape[1], fitted.info["features_s"],
             fitted.info["coreset_s"])
    return fitted


def select_bank(feats: torch.Tensor, cfg: MembankConfig, device: torch.device, seed: int,
                show_progress: bool = True) -> FittedBank:
    """The bank (coreset, then the width's PCA) of a patch-feature matrix [N, C]."""
    m = bank_size(feats.shape[0], cfg)
    t1 = time.perf_counter()
    with tqdm(total=m, desc="coreset", unit="pick", disable=not show_progress, dynamic_ncols=True) as bar:
        def tick(k: int) -> None:
            bar.update(k - bar.n)
        idx = greedy_coreset(feats.to(device), m, cfg.proj_dim, seed, progress=tick)
        bar.update(m - bar.n)
    bank = feats[idx.cpu()].clone()
    t_core = time.perf_counter() - t1
    projection = None
    width = bank_width(m, feats.shape[1], cfg)
    if width < feats.shape[1]:
        projection = pca_directions(feats, width)
        bank = bank @ projection
    info = {"patches": int(feats.shape[0]), "bank_size": m, "dim": int(bank.shape[1]),
            "feature_width": int(feats.shape[1]), "coreset_s": round(t_core, 3)}
    return FittedBank(bank, projection, info)
