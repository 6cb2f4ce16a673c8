"""Memory-bank detector: teacher pyramid -> patch features -> distance to the nearest bank entry -> map and score.

The nearest-neighbour step is one matrix product per chunk of the bank: each patch vector gets a trailing 1 and the
bank is kept as [-2 B | ||B||^2], so the product is ||B||^2 - 2 f.B^T directly and a minimum over the bank (plus
||f||^2) is the squared distance. It exports to ONNX as MatMul + ReduceMin with no elementwise pass over the
[patches x bank] block (that pass cost 10 % of a frame in onnxruntime: docs/results.md, "Bank size and width").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...backbone import FeatureExtractor, freeze
from .features import PatchFeatures

BANK_CHUNK = 4096  # bank rows per distance block: bounds the [N, h*w, chunk] intermediate (64 MiB at batch 4)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius 4 sigma (anomalib's PatchCore uses sigma 4 -> 33 taps)."""
    radius = int(4.0 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class GaussianBlur(nn.Module):
    """Separable Gaussian smoothing of [N, 1, H, W] maps with reflect padding (two Conv nodes in ONNX)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = float(sigma)
        k = gaussian_kernel1d(sigma) if sigma > 0 else torch.ones(1)
        self.register_buffer("kx", k.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("ky", k.view(1, 1, -1, 1), persistent=False)
        self.radius = (k.numel() - 1) // 2

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        if self.radius == 0:
            return m
        r = self.radius
        m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), self.kx)
        return F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), self.ky)


class MemoryBankModel(nn.Module):
    """forward(x normalised [N,3,H,W]) -> (anomaly_map [N,1,H,W] = smoothed nearest-bank distance, score [N]).

    score: the maximum of the map, leaving out a band of `score_border` patch strides (8 px at layer2) at each edge
    of the image; with `score_top` > 0 the mean of the largest `score_top` share of those map values instead. The
    band counts for the map, not for the score: the backbone's zero padding and the cut-off neighbourhoods make
    edge patches the least typical ones of a normal image (measured: docs/results.md, "Image score").
    """

    def __init__(self, teacher: FeatureExtractor, bank: torch.Tensor, layers: tuple[str, ...] = ("layer2", "layer3"),
                 aggregate: int = 3, sigma: float = 4.0, score_top: float = 0.0, score_border: int = 2,
                 projection: torch.Tensor | None = None) -> None:
        super().__init__()
        self.teacher = freeze(teacher)
        self.patches = PatchFeatures(layers, aggregate)
        width = self.patches.dim
        if projection is not None:
            if projection.ndim != 2 or projection.shape[0] != self.patches.dim:
                raise ValueError(f"projection must be [{self.patches.dim}, D] for layers {layers}, "
                                 f"got {list(projection.shape)}")
            width = projection.shape[1]
        # The bank lives in the projected space when there is a projection (fit.py: PCA of the training patches).
        self.register_buffer("projection", None if projection is None else projection.float().contiguous())
        if bank.ndim != 2 or bank.shape[1] != width:
            raise ValueError(f"bank must be [M, {width}] for layers {layers}"
                             f"{' and the projection' if projection is not None else ''}, got {list(bank.shape)}")
        self.register_buffer("bank", bank.float().contiguous())
        # [D + 1, M]: the product with [f | 1] is ||b||^2 - 2 f.b (module docstring).
        self.register_buffer("bank_aug", torch.cat([-2.0 * self.bank, (self.bank * self.bank).sum(1, keepdim=True)],
                                                   dim=1).t().contiguous(), persistent=False)
        self.blur = GaussianBlur(sigma)
        if not 0.0 <= score_top <= 1.0:
            raise ValueError(f"score_top must be in [0, 1], got {score_top}")
        self.score_top = float(score_top)
        if score_border < 0:
            raise ValueError(f"score_border must be >= 0, got {score_border}")
        self.score_border = int(score_border)

    def train(self, mode: bool = True) -> MemoryBankModel:
        super().train(mode)
        self.teacher.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch features [N, C, h, w] of normalised images."""
        return self.patches(self.teacher(x))

    def patch_distances(self, f: torch.Tensor) -> torch.Tensor:
        """[N, C, h, w] patch features -> [N, 1, h, w] Euclidean distance to the nearest bank entry."""
        n, c, h, w = f.shape
        q = f.flatten(2).transpose(1, 2)  # [N, hw, C]
        if self.projection is not None:
            q = torch.matmul(q, self.projection)  # [N, hw, D]
        q_sq = (q * q).sum(-1)  # [N, hw]
        qa = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)  # [N, hw, D + 1]
        best = None
        for s in range(0, self.bank_aug.shape[1], BANK_CHUNK):
            m = torch.matmul(qa, self.bank_aug[:, s:s + BANK_CHUNK]).amin(dim=-1)  # [N, hw, chunk] -> [N, hw]
            best = m if best is None else torch.minimum(best, m)
        d2 = (best + q_sq).clamp_min(0.0)
        return d2.sqrt().view(n, 1, h, w)

    def _maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(patch distances [N,1,h,w], upsampled distance, smoothed anomaly map [N,1,H,W])."""
        with torch.no_grad():
            dist = self.patch_distances(self.embed(x))
        return self._upsample(dist, (x.shape[-2], x.shape[-1]))

    def _upsample(self, dist: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        up = F.interpolate(dist, size=size, mode="bilinear", align_corners=False)
        return dist, up, self.blur(up)

    def named_maps(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """(title, map) pairs for figures: the raw distance, then the final (smoothed) map."""
        _, up, amap = self._maps(x)
        return [("nearest-bank distance", up), ("anomaly map (smoothed)", amap)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist, _, amap = self._maps(x)
        return amap, self._score(dist, amap)

    @torch.no_grad()
    def from_features(self, f: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """forward() for patch features [N, C, h, w] already extracted (k-fold scoring reuses the training ones)."""
        dist, _, amap = self._upsample(self.patch_distances(f), size)
        return amap, self._score(dist, amap)

    def _score(self, dist: torch.Tensor, amap: torch.Tensor) -> torch.Tensor:
        h, w = dist.shape[-2:]
        if 2 * self.score_border >= min(h, w):
            raise ValueError(f"score_border {self.score_border} leaves no patch of a {h}x{w} patch grid")
        big_h, big_w = amap.shape[-2:]
        bh, bw = self.score_border * big_h // h, self.score_border * big_w // w
        flat = amap[..., bh:big_h - bh, bw:big_w - bw].flatten(1)
        if self.score_top <= 0.0:
            return flat.amax(dim=1)
        k = max(1, int(round(self.score_top * flat.shape[1])))
        return flat.topk(k, dim=1).values.mean(dim=1)
