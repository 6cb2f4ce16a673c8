"""`etstpm export`: one fused ONNX graph + model.json manifest (format `etstpm-model/1`, docs/model-format.md).

Graph: frames uint8 [N,H,W,3] RGB -> float /255 -> ImageNet mean/std -> teacher & student pyramids ->
per-level 1-cos maps -> bilinear upsampling -> product = anomaly_map [N,1,H,W] -> max = score [N].
Exported with torch.onnx's TorchScript-based exporter (dynamo=False): it still exists in torch 2.14, produces a
single self-contained file with dynamic batch via `dynamic_axes`, and needs no onnxscript rewriting.
"""
from __future__ import annotations

import hashlib
import json
import logging
import warnings
from datetime import datetime, timezone
from pathlib import Path

import onnx
import torch
from torch import nn

from . import IMAGENET_MEAN, IMAGENET_STD, __version__
from .errors import ConfigError
from .model import ETSTPM
from .run import RunError, load_run

log = logging.getLogger(__name__)

MODEL_FORMAT = "etstpm-model/1"
INPUT_NAME = "frames"
OUTPUT_NAMES = ("anomaly_map", "score")


class FramesModel(nn.Module):
    """uint8 NHWC RGB frames in, (anomaly_map, score) out: the whole deployable computation."""

    def __init__(self, model: ETSTPM) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Same arithmetic as etstpm.data.to_tensor, so PyTorch and ONNX see identical inputs.
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        x = (x - self.mean) / self.std
        return self.model(x)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(model: ETSTPM, path: Path, image_size: int, opset: int = 17) -> None:
    if opset < 17:
        raise ConfigError(f"--opset must be >= 17 (docs/model-format.md), got {opset}")
    wrapper = FramesModel(model.cpu().eval()).eval()
    dummy = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about its own deprecation
        torch.onnx.export(
            wrapper, (dummy,), str(path), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "N"}, "anomaly_map": {0: "N"}, "score": {0: "N"}},
            do_constant_folding=True,
        )
    # The exporter names the map's non-batch dims symbolically; they are fixed (1, H, W) per model: say so.
    proto = onnx.load(str(path))
    for out in proto.graph.output:
        if out.name == "anomaly_map":
            dims = out.type.tensor_type.shape.dim
            for d, v in zip(list(dims)[1:], (1, image_size, image_size)):
                d.Clear()
                d.dim_value = v
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def _load_metrics(run_dir: Path, metrics_path: str | None) -> dict | None:
    p = Path(metrics_path) if metrics_path else run_dir / "metrics.json"
    if not p.is_file():
        if metrics_path:
            raise RunError(f"--metrics file not found: {p}")
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{p}: invalid JSON ({e})") from e


def export_run(run_dir: str | Path, out_dir: str | Path, metrics_path: str | None = None, name: str | None = None,
               opset: int = 17, allow_uncalibrated: bool = False) -> dict:
    """Write out_dir/model.onnx and out_dir/model.json; returns the manifest."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model, meta = load_run(run_dir, "cpu")
    cal = meta.get("calibration")
    if cal is None and not allow_uncalibrated:
        raise RunError(f"{run_dir} is not calibrated: run `etstpm calibrate --run {run_dir}` first "
                       "(or pass --allow-uncalibrated)")
    size = int(meta["image_size"])
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    tmp = out_dir / ".model.onnx.tmp"
    export_onnx(model, tmp, size, opset)
    tmp.replace(onnx_path)
    digest = sha256_file(onnx_path)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    metrics = _load_metrics(run_dir, metrics_path)
    categories = [meta["category"]]
    manifest = {
        "format": MODEL_FORMAT,
        "name": name or f"{meta['category']}-etstpm",
        "version": f"{created}-{digest[:8]}",
        "created": created,
        "input": {"name": INPUT_NAME, "layout": "NHWC", "dtype": "uint8", "color": "RGB", "height": size,
                  "width": size},
        "outputs": {"anomaly_map": "anomaly_map", "score": "score"},
        "onnx": {"file": "model.onnx", "sha256": digest, "opset": opset},
        "threshold": cal["threshold"] if cal else None,
        "normalization": cal["normalization"] if cal else None,
        "training": {
            "categories": categories,
            "data": meta["data"],
            "finetune": meta.get("finetune"),
            "finetune_details": meta.get("finetune_details"),
            "protocol": meta.get("protocol"),
            "epochs": meta.get("epochs_done", meta.get("epochs")),
            "image_size": size,
            "seed": meta.get("seed"),
            "weights": (meta.get("weights") or {}).get("given"),
            "wall_time_s": meta.get("wall_time_s"),
            "etstpm_version": __version__,
        },
        "metrics": metrics,
    }
    (out_dir / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("exported %s (%s)", onnx_path, digest)
    return manifest
