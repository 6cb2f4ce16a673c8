"""Anomaly map: per level 1 - cos(teacher, student), upsampled to the input size, multiplied over the levels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AnomalyMapGenerator(nn.Module):
    def level_maps(self, teacher: list[torch.Tensor], student: list[torch.Tensor],
                   size: tuple[int, int]) -> list[torch.Tensor]:
        """One [N, 1, H, W] map per level: 1 - cosine similarity per position, bilinear to `size`."""
        maps = []
        for t, s in zip(teacher, student, strict=True):
            m = 1.0 - F.cosine_similarity(t, s, dim=1).unsqueeze(1)
            maps.append(F.interpolate(m, size=size, mode="bilinear", align_corners=False))
        return maps

    def forward(self, teacher: list[torch.Tensor], student: list[torch.Tensor],
                size: tuple[int, int]) -> torch.Tensor:
        maps = self.level_maps(teacher, student, size)
        out = maps[0]
        for m in maps[1:]:
            out = out * m
        return out
