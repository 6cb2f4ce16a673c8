"""Exponential moving average of a module's weights (parameters and floating-point buffers), bias-corrected.

Used for the STPM student (`--ema-epochs`): at the paper's constant learning rate the student's weights keep moving
by several hundredths of image AUROC from one epoch to the next (docs/results.md, "STPM that converges"); an average
over the last few epochs is a settled student without changing the trajectory itself.
"""
from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """avg <- decay * avg + (1 - decay) * weights after every optimizer step, decay = 0.5 ** (1 / half_life_steps).

    Bias-corrected like Adam's moments (divided by 1 - decay^t), so early on the average is of the steps so far, not
    pulled towards zero. Integer buffers (BatchNorm's num_batches_tracked) are taken as they are.
    """

    def __init__(self, module: nn.Module, half_life_steps: float) -> None:
        if half_life_steps <= 0:
            raise ValueError(f"half-life must be > 0 steps, got {half_life_steps}")
        self.decay = 0.5 ** (1.0 / half_life_steps)
        self.avg = {k: torch.zeros_like(v) for k, v in module.state_dict().items() if v.is_floating_point()}
        self.mass = 0.0  # 1 - decay^t: the weight the average has accumulated

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        state = module.state_dict()
        for k, a in self.avg.items():
            a.mul_(self.decay).add_(state[k].detach(), alpha=1.0 - self.decay)
        self.mass = self.mass * self.decay + (1.0 - self.decay)

    def averaged(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """A state dict for `module`: the averaged floating-point entries, the others as the module has them."""
        if self.mass == 0.0:
            raise RuntimeError("no update yet: nothing to average")
        return {k: (self.avg[k] / self.mass if k in self.avg else v.clone()) for k, v in module.state_dict().items()}

    def state_dict(self) -> dict:
        return {"avg": self.avg, "mass": self.mass, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        if abs(float(state["decay"]) - self.decay) > 1e-12:
            raise ValueError(f"checkpoint's average has decay {state['decay']}, this run {self.decay} "
                             "(--ema-epochs and the batch count must match to resume)")
        for k, a in self.avg.items():
            a.copy_(state["avg"][k])
        self.mass = float(state["mass"])
