"""`etstpm export`: one fused ONNX graph + model.json manifest (format `etstpm-model/1`, docs/model-format.md).

Graph: frames uint8 [N,H,W,3] RGB -> float /255 -> ImageNet mean/std -> the run's detector -> anomaly_map
[N,1,H,W] and score [N]. STPM: teacher & student pyramids -> per-level 1-cos maps -> bilinear upsampling ->
product -> max. Memory bank: teacher pyramid -> patch features -> MatMul + ReduceMin against the bank (an
initializer, optionally stored as float16 and cast back) -> bilinear upsampling -> Gaussian smoothing -> max.
Exported with torch.onnx's TorchScript-based exporter (dynamo=False): it still exists in torch 2.14, produces a
single self-contained file with dynamic batch via `dynamic_axes`, and needs no onnxscript rewriting.
With `int8`, the float graph is then statically quantized (QDQ, backbone convolutions only; etstpm.quantize) and the
threshold re-calibrated on the INT8 model's own hold-out scores.
"""
from __future__ import annotations

import hashlib
import json
import logging
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from . import IMAGENET_MEAN, IMAGENET_STD, __version__, data
from .calibrate import warn_if_short
from .errors import ConfigError
from .methods import get_method
from .quantize import Int8Config, onnx_scores, quantize_int8, spread
from .run import RunError, load_run, run_method

log = logging.getLogger(__name__)

MODEL_FORMAT = "etstpm-model/1"
INPUT_NAME = "frames"
OUTPUT_NAMES = ("anomaly_map", "score")


class FramesModel(nn.Module):
    """uint8 NHWC RGB frames in, (anomaly_map, score) out: the whole deployable computation."""

    def __init__(self, model: nn.Module) -> None:
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


def bank_to_float16(proto: onnx.ModelProto) -> int:
    """Store every float32 constant that feeds a MatMul (the memory bank and its projection; convolutions use Conv)
    as float16, cast back to float32 at run time; the arithmetic stays float32. The exporter leaves such a constant
    as an initializer or, once folded, as a Constant node; both are handled. Returns the number converted."""
    g = proto.graph
    by_name = {t.name: t for t in g.initializer}
    const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.attribute
                   and n.attribute[0].name == "value"}
    matmul_inputs = {i for n in g.node if n.op_type == "MatMul" for i in n.input}
    converted = 0
    for name in sorted(matmul_inputs):
        if name in by_name:
            t = by_name[name]
            if t.data_type != onnx.TensorProto.FLOAT:
                continue
            half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), name=f"{name}_fp16")
            g.initializer.remove(t)
            g.initializer.append(half)
            at = 0
        elif name in const_nodes:
            node = const_nodes[name]
            t = node.attribute[0].t
            if t.data_type != onnx.TensorProto.FLOAT:
                continue
            node.attribute[0].t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16)))
            node.output[0] = f"{name}_fp16"
            at = list(g.node).index(node) + 1
        else:
            continue
        g.node.insert(at, onnx.helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT,
                                                name=f"{name}_to_fp32"))
        converted += 1
    return converted


def export_onnx(model: nn.Module, path: Path, image_size: int, opset: int = 17, bank_fp16: bool = False) -> None:
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
    if bank_fp16 and bank_to_float16(proto) == 0:
        raise ConfigError("--bank-fp16: the model has no memory bank (only --method membank runs have one)")
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


def training_samples(meta: dict) -> list[data.Sample]:
    """The images the run was fitted on: train/good minus the calibration hold-out, capped as in training."""
    from .calibrate import fitted_samples

    return fitted_samples(meta)


def _calibration_samples(meta: dict, cal: dict) -> list[data.Sample] | None:
    """The good images the calibration scored, where the exported model can score them again (None: k-fold)."""
    from .calibrate import folder_samples, holdout_samples

    source = (cal["threshold"].get("details") or {}).get("source") or {"kind": "holdout"}
    if source["kind"] == "folder":
        return folder_samples(source["folder"])
    if source["kind"] == "holdout":
        return holdout_samples(meta)
    return None


def _quantize(meta: dict, fp32: Path, out: Path, cfg: Int8Config, cal: dict | None) -> tuple[dict, dict | None]:
    """INT8 model of `fp32` at `out`; returns (manifest 'quantization' entry, calibration redone on INT8 scores)."""
    from .calibrate import GoodScores, recalibrate

    cfg.validate()
    size = int(meta["image_size"])
    train = training_samples(meta)
    calib = spread(train, cfg.calibration_images)
    info = quantize_int8(fp32, out, calib, size, cfg)
    info["calibration_set"] = {"data": meta["data"], "category": meta["category"],
                               "split": "train/good minus the calibration hold-out (the run's training images)",
                               "images": len(calib), "of": len(train), "selection": "evenly spaced in file order"}
    if cal is None:
        return info, None
    samples = _calibration_samples(meta, cal)
    info["float32_threshold"] = cal["threshold"]["raw"]
    if samples is None:
        # The fold banks are not part of the export; the INT8 backbone's shift is measured in docs/training.md, INT8.
        info["threshold"] = "the float32 model's (k-fold calibration scores cannot be redone on the INT8 model)"
        log.warning("--int8 on a k-fold calibrated run: the float32 threshold is kept; recalibrate the INT8 model "
                    "on good images with a calibration folder (`etstpm calibrate --good DIR`, then export)")
        return info, recalibrate(cal, None)
    normal, low = onnx_scores(out, samples, size)
    info["threshold"] = "re-calibrated on the INT8 model's scores of the calibration images"
    source = (cal["threshold"].get("details") or {}).get("source") or {"kind": "holdout", "images": len(samples)}
    return info, recalibrate(cal, GoodScores(normal, low, source))


def export_run(run_dir: str | Path, out_dir: str | Path, metrics_path: str | None = None, name: str | None = None,
               opset: int = 17, allow_uncalibrated: bool = False, bank_fp16: bool = False,
               int8: Int8Config | None = None) -> dict:
    """Write out_dir/model.onnx and out_dir/model.json; returns the manifest. `int8`: a QDQ INT8 model instead."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model, meta = load_run(run_dir, "cpu")
    cal = meta.get("calibration")
    if cal is None and not allow_uncalibrated:
        raise RunError(f"{run_dir} is not calibrated: run `etstpm calibrate --run {run_dir}` first "
                       "(or pass --allow-uncalibrated)")
    warn_if_short(cal, f"export {run_dir}")
    method = get_method(run_method(meta))
    if int8 is not None:
        int8.validate()
        if method.int8_warning:
            log.warning(method.int8_warning)
    size = int(meta["image_size"])
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    tmp = out_dir / ".model.onnx.tmp"
    export_onnx(model, tmp, size, opset, bank_fp16=bank_fp16)
    quantization = None
    if int8 is not None:
        tmp_q = out_dir / ".model.int8.onnx.tmp"
        try:
            quantization, cal = _quantize(meta, tmp, tmp_q, int8, cal)
            tmp_q.replace(tmp)
        finally:
            tmp_q.unlink(missing_ok=True)
    tmp.replace(onnx_path)
    digest = sha256_file(onnx_path)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    metrics = _load_metrics(run_dir, metrics_path)
    categories = [meta["category"]]
    manifest = {
        "format": MODEL_FORMAT,
        "name": name or f"{meta['category']}-{method.model_name}",
        "version": f"{created}-{digest[:8]}",
        "created": created,
        "input": {"name": INPUT_NAME, "layout": "NHWC", "dtype": "uint8", "color": "RGB", "height": size,
                  "width": size},
        "outputs": {"anomaly_map": "anomaly_map", "score": "score"},
        "onnx": {"file": "model.onnx", "sha256": digest, "opset": opset},
        "threshold": cal["threshold"] if cal else None,
        "normalization": cal["normalization"] if cal else None,
        "method": method.name,
        "precision": "int8" if int8 is not None else "fp32",
        **({"quantization": quantization} if quantization is not None else {}),
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
        **method.manifest(meta, bank_fp16),
        "metrics": metrics,
    }
    if int8 is not None:
        warn_if_short(cal, f"export {run_dir} (INT8)")
    (out_dir / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("exported %s (%s)", onnx_path, digest)
    return manifest
