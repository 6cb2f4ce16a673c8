"""Teacher weights: both file forms load, and conv1..layer3 compute exactly what the file's tensors say."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from etstpm.backbone import FeatureExtractor
from etstpm.weights import WeightsError, bn_form, load_resnet18, load_state_file


def _bn(x: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    return ((x - sd[p + ".running_mean"].view(shape)) / torch.sqrt(sd[p + ".running_var"].view(shape) + 1e-5)
            * sd[p + ".weight"].view(shape) + sd[p + ".bias"].view(shape))


def _block(x: torch.Tensor, sd: dict, p: str, stride: int) -> torch.Tensor:
    out = F.relu(_bn(F.conv2d(x, sd[p + ".conv1.weight"], stride=stride, padding=1), sd, p + ".bn1"))
    out = _bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2")
    if p + ".downsample.0.weight" in sd:
        x = _bn(F.conv2d(x, sd[p + ".downsample.0.weight"], stride=stride), sd, p + ".downsample.1")
    return F.relu(out + x)


def reference_pyramid(sd: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """ResNet-18 conv1..layer3 written out by hand from the state_dict tensors (no torchvision modules)."""
    x = F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    feats = []
    for layer, stride in (("layer1", 1), ("layer2", 2), ("layer3", 2)):
        x = _block(x, sd, f"{layer}.0", stride)
        x = _block(x, sd, f"{layer}.1", 1)
        feats.append(x)
    return feats


def test_shared_file_is_folded_and_pyramid_matches_file(weights_file: Path) -> None:
    model, info = load_resnet18(weights_file)
    assert info["bn_form"] == "folded"
    assert info["missing"] and all(k.startswith("layer4.") for k in info["missing"])
    fe = FeatureExtractor(model).eval()
    sd = load_state_file(weights_file)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = fe(x)
        want = reference_pyramid(sd, x)
    for g, w, c in zip(got, want, (64, 128, 256)):
        assert g.shape[1] == c
        assert torch.allclose(g, w, atol=1e-4, rtol=1e-4), (g - w).abs().max()


def test_original_form_and_its_folding_compute_the_same(tmp_path: Path) -> None:
    """A torchvision state_dict with real BN statistics ('original') vs the same weights with BN folded."""
    torch.manual_seed(0)
    m = resnet18(weights=None)
    for mod in m.modules():  # give BN non-trivial statistics, as ImageNet training would
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    original = {k: v.clone() for k, v in m.state_dict().items()}
    torch.save(original, tmp_path / "original.pth")

    folded = dict(original)
    convs = {"bn1": "conv1"} | {k[: -len(".running_mean")]: k[: -len(".running_mean")].replace("bn", "conv")
                                 .replace("downsample.1", "downsample.0") for k in original
                                 if k.endswith(".running_mean") and k != "bn1.running_mean"}
    for bn, conv in convs.items():
        scale = original[bn + ".weight"] / torch.sqrt(original[bn + ".running_var"] + 1e-5)
        folded[conv + ".weight"] = original[conv + ".weight"] * scale.view(-1, 1, 1, 1)
        folded[bn + ".bias"] = original[bn + ".bias"] - original[bn + ".running_mean"] * scale
        folded[bn + ".weight"] = torch.ones_like(scale)
        folded[bn + ".running_mean"] = torch.zeros_like(scale)
        folded[bn + ".running_var"] = torch.full_like(scale, 1 - 1e-5)
    folded = {k: v for k, v in folded.items() if not k.startswith("layer4.")}
    torch.save(folded, tmp_path / "folded.pth")

    a, ia = load_resnet18(tmp_path / "original.pth")
    b, ib = load_resnet18(tmp_path / "folded.pth")
    assert (ia["bn_form"], ib["bn_form"]) == ("original", "folded")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for fa, fb in zip(FeatureExtractor(a).eval()(x), FeatureExtractor(b).eval()(x)):
            assert torch.allclose(fa, fb, atol=1e-4, rtol=1e-4)
    assert bn_form(original) == "original"


def test_missing_pyramid_key_is_named(tmp_path: Path, weights_file: Path) -> None:
    sd = load_state_file(weights_file)
    del sd["layer2.0.conv1.weight"]
    torch.save(sd, tmp_path / "cut.pth")
    with pytest.raises(WeightsError, match=r"missing keys needed for conv1..layer3: layer2\.0\.conv1\.weight"):
        load_resnet18(tmp_path / "cut.pth")


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"weights file not found: .*nope\.pth"):
        load_resnet18(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match=r"cannot read weights file .*junk\.pth"):
        load_resnet18(tmp_path / "junk.pth")
    torch.save({"conv1.weight": torch.zeros(3, 3, 7, 7)}, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"shape\.pth: does not fit torchvision resnet18"):
        load_resnet18(tmp_path / "shape.pth")


@pytest.mark.skipif(os.environ.get("ETSTPM_NETWORK") != "1",
                    reason="downloads torchvision's ImageNet weights; set ETSTPM_NETWORK=1 on a machine with a network")
def test_imagenet_download_weights() -> None:
    model, info = load_resnet18("imagenet")
    assert info["bn_form"] == "original" and not info["missing"]
