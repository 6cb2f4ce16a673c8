"""ResNet-18 feature pyramid (conv1 .. layer3) shared by teacher and student."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet, resnet18

LEVELS = ("layer1", "layer2", "layer3")
CHANNELS = (64, 128, 256)


class FeatureExtractor(nn.Module):
    """conv1 .. layer3 of a torchvision ResNet-18; returns [layer1, layer2, layer3] feature maps.

    Module names equal torchvision's, so its state_dict keys are torchvision's keys for those layers.
    """

    def __init__(self, resnet: ResNet | None = None) -> None:
        super().__init__()
        r = resnet if resnet is not None else resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3 = r.layer1, r.layer2, r.layer3

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode (frozen BatchNorm statistics)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def set_batchnorm_eval(module: nn.Module) -> None:
    """Put every BatchNorm in eval mode (use and keep the stored running statistics), leaving the rest as is.

    Why: the shared BN-folded weights carry no real statistics (mean 0, var 1-eps), so batch statistics would
    change the function; keeping BN in eval mode during teacher fine-tuning is correct for both weight forms.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
