#!/usr/bin/env python3
"""FLOPs of the fused ET-STPM model per image (teacher + student ResNet-18, conv1..layer3) and the throughput
estimates in docs/deploy-jetson.md. Counts with torch.utils.flop_counter (1 multiply-add = 2 FLOPs).

    .venv/bin/python deploy/jetson/estimate_flops.py [--size 256]
"""
import argparse

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

# Dense FP16 tensor-core peak = SMs x 2048 FLOP/clock (Ampere GA10b, A100-class SM) x GPU clock.
DEVICES = {
    "Orin Nano 8GB (15 W, 625 MHz, 8 SMs)": 8 * 2048 * 0.625e9,
    "Orin Nano 8GB Super (25 W/MAXN, 1020 MHz, 8 SMs)": 8 * 2048 * 1.020e9,
    "AGX Orin 64GB (MAXN, 1300 MHz, 16 SMs)": 16 * 2048 * 1.300e9,
}
UTILISATION = (0.15, 0.35)  # share of dense peak a TensorRT FP16 engine reaches on this small, batch-4 network


class Trunk(torch.nn.Module):
    """conv1..layer3 of a ResNet-18: the part ET-STPM's teacher and student both run."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        f1 = n.layer1(x)
        f2 = n.layer2(f1)
        return f1, f2, n.layer3(f2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    size = p.parse_args().size
    trunk = Trunk(torchvision.models.resnet18(weights=None)).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        feats = trunk(torch.zeros(1, 3, size, size))
    conv = counter.get_total_flops()
    # Per level: 1 - cos over C channels (~3 multiply-adds per channel and position); bilinear upsampling of three
    # maps to size x size (~8 FLOPs per output pixel each); product of three maps; max. Rounded up.
    post = sum(6 * f.shape[1] * f.shape[2] * f.shape[3] for f in feats) + 3 * size * size * 8 + 3 * size * size
    total = 2 * conv + post
    used = ("conv1", "bn1", "layer1", "layer2", "layer3")
    params = sum(p.numel() for n, p in trunk.net.named_parameters() if n.split(".")[0] in used)
    print(f"input {size}x{size}: one trunk {conv / 1e9:.3f} GFLOPs ({params / 1e6:.2f} M parameters); "
          f"teacher + student {2 * conv / 1e9:.3f} GFLOPs; maps/upsampling/product ~{post / 1e6:.1f} MFLOPs; "
          f"total {total / 1e9:.2f} GFLOPs per image")
    for name, peak in DEVICES.items():
        lo, hi = (peak * u / total for u in UTILISATION)
        print(f"{name}: FP16 dense peak {peak / 1e12:.1f} TFLOPS -> {lo:.0f}..{hi:.0f} images/s "
              f"at {UTILISATION[0]:.0%}..{UTILISATION[1]:.0%} utilisation")


if __name__ == "__main__":
    main()
