"""STPM distillation loss (Wang et al. 2021, as used by ET-STPM)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class STPMLoss(nn.Module):
    """Sum over pyramid levels of the mean over positions (and batch) of 0.5 * ||norm(t) - norm(s)||^2.

    norm() is the L2 normalization of each position's channel vector.
    """

    def forward(self, teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
        total = teacher[0].new_zeros(())
        for t, s in zip(teacher, student, strict=True):
            d = F.normalize(t, dim=1) - F.normalize(s, dim=1)
            total = total + 0.5 * d.pow(2).sum(dim=1).mean()
        return total
