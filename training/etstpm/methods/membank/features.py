"""Patch embedding: chosen pyramid levels, each averaged over a local neighbourhood, resampled to the first chosen
level's grid and concatenated along channels (PatchCore's locally aware patch features)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...backbone import CHANNELS, LEVELS


def parse_layers(names: tuple[str, ...] | list[str]) -> tuple[int, ...]:
    """Level names ('layer2', ...) -> pyramid indices, in pyramid order; ValueError naming a bad one."""
    out = []
    for n in names:
        if n not in LEVELS:
            raise ValueError(f"unknown feature layer {n!r} (choose from {', '.join(LEVELS)})")
        out.append(LEVELS.index(n))
    if not out:
        raise ValueError("at least one feature layer is needed")
    return tuple(sorted(set(out)))


class PatchFeatures(nn.Module):
    """forward(pyramid [f1, f2, f3]) -> [N, C, h, w] patch features on the grid of the first chosen level."""

    def __init__(self, layers: tuple[str, ...] = ("layer2", "layer3"), aggregate: int = 3) -> None:
        super().__init__()
        if aggregate < 1 or aggregate % 2 == 0:
            raise ValueError(f"aggregation window must be odd and >= 1, got {aggregate}")
        self.levels = parse_layers(layers)
        self.aggregate = aggregate
        self.dim = sum(CHANNELS[i] for i in self.levels)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        feats = [pyramid[i] for i in self.levels]
        if self.aggregate > 1:
            # count_include_pad=False: border patches average their real neighbours only (as PatchCore's unfold).
            feats = [F.avg_pool2d(f, self.aggregate, stride=1, padding=self.aggregate // 2, count_include_pad=False)
                     for f in feats]
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        return torch.cat(feats, dim=1)
