"""Teacher weights: torchvision's ImageNet ResNet-18, either downloaded (`imagenet`) or from a state_dict file.

Two file forms are accepted:
- original: torchvision's state_dict with real BatchNorm statistics (layer4/fc may be absent);
- folded:   BatchNorm folded into the convolutions (BN weight 1, running_mean 0, running_var 1-eps, bias = folded
            conv bias), as in ../shared/weights/resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth.
In eval mode both compute the same conv1..layer3 function; BatchNorm is therefore never run in train mode on the
teacher (see backbone.set_batchnorm_eval and docs/training.md).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision.models import ResNet, ResNet18_Weights, resnet18

from .errors import WeightsError  # defined there; importable from here too

# Keys a file may lack: the pyramid ends at layer3, so layer4 is unused; fc is replaced by fine-tuning anyway.
OPTIONAL_PREFIXES = ("layer4.", "fc.")


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def bn_form(state: dict[str, torch.Tensor]) -> str:
    """'folded' if every BatchNorm is identity-plus-bias (weight 1, mean 0, var ~1), else 'original'."""
    means = [k for k in state if k.endswith("running_mean")]
    if not means:
        return "original"
    for k in means:
        base = k[: -len("running_mean")]
        if not (
            torch.all(state[k] == 0)
            and torch.allclose(state[base + "running_var"], torch.ones_like(state[base + "running_var"]), atol=1e-4)
            and torch.all(state[base + "weight"] == 1)
        ):
            return "original"
    return "folded"


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (pickle, zip, runtime) for a bad file
        raise WeightsError(f"cannot read weights file {path}: {e}") from e
    return _unwrap(obj, path)


def load_resnet18(weights: str | Path) -> tuple[ResNet, dict]:
    """torchvision resnet18 with ImageNet weights; returns (model, info) with info = {source, bn_form, missing}."""
    if str(weights) == "imagenet":
        try:
            model = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        except Exception as e:  # no network, proxy, disk ...
            raise WeightsError(
                f"could not download torchvision's ImageNet resnet18 weights ({e}); "
                "pass --weights FILE with a local state_dict instead"
            ) from e
        return model, {"source": "imagenet", "bn_form": "original", "missing": []}

    state = load_state_file(weights)
    model = resnet18(weights=None)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise WeightsError(f"{weights}: does not fit torchvision resnet18: {e}") from e
    bad_missing = [k for k in result.missing_keys if not k.startswith(OPTIONAL_PREFIXES)]
    if bad_missing:
        raise WeightsError(f"{weights}: missing keys needed for conv1..layer3: {', '.join(bad_missing[:8])}"
                           + (" ..." if len(bad_missing) > 8 else ""))
    if result.unexpected_keys:
        raise WeightsError(f"{weights}: unexpected keys (not a resnet18 state_dict?): "
                           f"{', '.join(result.unexpected_keys[:8])}")
    return model, {"source": str(weights), "bn_form": bn_form(state), "missing": sorted(result.missing_keys)}
