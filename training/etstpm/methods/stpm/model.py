"""ET-STPM model: frozen (fine-tuned) teacher pyramid + distilled student pyramid + anomaly map."""
from __future__ import annotations

import torch
from torch import nn

from ...backbone import FeatureExtractor, freeze
from .anomaly_map import AnomalyMapGenerator


class ETSTPM(nn.Module):
    """forward(x normalized [N,3,H,W]) -> (anomaly_map [N,1,H,W], score [N] = max of the map)."""

    def __init__(self, teacher: FeatureExtractor, student: FeatureExtractor) -> None:
        super().__init__()
        self.teacher = freeze(teacher)
        self.student = student
        self.anomaly_map = AnomalyMapGenerator()

    def train(self, mode: bool = True) -> ETSTPM:
        super().train(mode)
        self.teacher.eval()  # the teacher is always frozen, including its BatchNorm statistics
        return self

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        with torch.no_grad():
            t = self.teacher(x)
        return t, self.student(x)

    def level_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        t, s = self.features(x)
        return self.anomaly_map.level_maps(t, s, (x.shape[-2], x.shape[-1]))

    def named_maps(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """(title, [N,1,H,W] map) per pyramid level, then the final map (for figures)."""
        levels = self.level_maps(x)
        out = levels[0]
        for m in levels[1:]:
            out = out * m
        return [(f"layer{i + 1} map", m) for i, m in enumerate(levels)] + [("anomaly map (product)", out)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, s = self.features(x)
        amap = self.anomaly_map(t, s, (x.shape[-2], x.shape[-1]))
        score = amap.flatten(1).amax(dim=1)
        return amap, score
