"""INT8 post-training quantization of an exported model (`etstpm export --int8`).

onnxruntime's static quantization (`quantize_static`) in QDQ form: QuantizeLinear/DequantizeLinear pairs around the
backbone convolutions, int8 weights per output channel, int8 activations with ranges from calibration images. Only
the teacher's and student's Conv nodes are quantized: everything after the pyramid stays float - STPM's 1 - cos maps,
the memory bank's MatMul/ReduceMin nearest-neighbour step, the bilinear upsampling, the Gaussian blur (itself two
Conv nodes, hence the selection by node name rather than by op type), the product and the max. Inputs and outputs
are the float model's (frames uint8 in; anomaly_map, score float32 out), so the daemon loads either.

Two forms (`--int8 TARGET`), because the two runtimes want different activation types:
- `tensorrt`: activations and weights symmetric int8 (zero point 0), the only form TensorRT's explicit quantization
  accepts (docs/deploy-jetson.md). onnxruntime's x86 CPU provider runs it correctly but fuses only some of its
  convolutions into integer kernels (measured: no speed-up there).
- `cpu`: activations uint8 (asymmetric), weights int8 symmetric per channel in a 7-bit range (reduce_range),
  onnxruntime's recommendation for x86: every backbone convolution becomes an integer QLinearConv. The 7-bit weights
  keep it exact on x86 CPUs without VNNI, where full-range uint8 x int8 products saturate (docs/training.md, INT8).
  TensorRT cannot build this one (uint8 Q/DQ).
Calibration uses only the run's own training images (train/good minus the calibration hold-out), never test images;
the hold-out then re-calibrates the decision threshold on the INT8 model's own scores.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from . import data
from .errors import ConfigError

log = logging.getLogger(__name__)

# Module paths of the pyramids in the exported graph (FramesModel.model.teacher / .student): the TorchScript exporter
# names each node after the module that produced it, e.g. "/model/teacher/layer1/layer1.0/conv1/Conv".
BACKBONE_PREFIXES = ("/model/teacher/", "/model/student/")
# The pyramid's own ops. The residual Adds get Q/DQ too, following TensorRT's Q/DQ placement advice for ResNet-like
# networks (a quantized residual input lets it fuse the Add into the INT8 convolution); on onnxruntime's CPU provider
# it changes nothing about which convolutions become integer kernels (measured: 15 of 15 with `cpu` either way).
BACKBONE_OP_TYPES = ("Conv", "Add", "Relu", "MaxPool")
CALIBRATION_METHOD = "MinMax"


TARGETS = ("tensorrt", "cpu")


@dataclass
class Int8Config:
    target: str = "tensorrt"  # tensorrt (symmetric int8 activations) | cpu (uint8 activations)
    calibration_images: int = 32  # spread evenly over the training images
    batch_size: int = 8

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--int8 must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.calibration_images < 1:
            raise ConfigError(f"--int8-calibration-images must be >= 1, got {self.calibration_images}")


def backbone_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the pyramid's nodes to quantize; the blur's Convs and all map math are left out."""
    names = [n.name for n in proto.graph.node
             if n.op_type in BACKBONE_OP_TYPES and n.name.startswith(BACKBONE_PREFIXES)]
    if not any(n.endswith("/Conv") for n in names):
        raise ConfigError("no backbone Conv nodes found in the exported graph (node names changed?): cannot quantize")
    return names


def spread(items: Sequence, n: int) -> list:
    """n items spread evenly over the sequence (all of them if n >= len): a deterministic, order-covering subset."""
    if n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(np.int64)
    return [items[i] for i in np.unique(idx)]


class FramesReader(CalibrationDataReader):
    """onnxruntime CalibrationDataReader: {"frames": uint8 [b, S, S, 3]} batches of the given images."""

    def __init__(self, samples: Sequence[data.Sample], image_size: int, batch_size: int, input_name: str = "frames"):
        self.samples, self.size, self.batch, self.input_name = list(samples), image_size, batch_size, input_name
        self._it: Iterator[dict] | None = None

    def _batches(self) -> Iterator[dict]:
        for k in range(0, len(self.samples), self.batch):
            chunk = self.samples[k:k + self.batch]
            yield {self.input_name: np.stack([data.load_rgb(s.path, self.size) for s in chunk])}

    def get_next(self) -> dict | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def quantize_int8(fp32_path: Path, out_path: Path, calibration: Sequence[data.Sample], image_size: int,
                  cfg: Int8Config) -> dict:
    """Write the QDQ INT8 model of `fp32_path` to `out_path`; returns what the manifest records about it."""
    cfg.validate()
    if not calibration:
        raise ConfigError("INT8 calibration needs at least one training image")
    symmetric = cfg.target == "tensorrt"
    proto = onnx.load(str(fp32_path))
    nodes = backbone_nodes(proto)
    convs = [n for n in nodes if n.endswith("/Conv")]
    reader = FramesReader(calibration, image_size, cfg.batch_size)
    with _without_preprocessing_hint():
        _quantize_static(fp32_path, out_path, reader, nodes, symmetric)
    q = onnx.load(str(out_path))
    ops = [n.op_type for n in q.graph.node]
    return {
        "format": "QDQ",
        "target": cfg.target,
        "tool": f"onnxruntime.quantization.quantize_static (onnxruntime {ort.__version__})",
        "weights": "int8 symmetric, per output channel" if symmetric
        else "int8 symmetric, 7-bit range (reduce_range), per output channel",
        "activations": "int8 symmetric (zero point 0), per tensor" if symmetric else "uint8 asymmetric, per tensor",
        "calibration_method": CALIBRATION_METHOD,
        "quantized_nodes": len(nodes),
        "quantized_convs": len(convs),
        "quantize_linear_nodes": ops.count("QuantizeLinear"),
        "dequantize_linear_nodes": ops.count("DequantizeLinear"),
        "float_conv_nodes": ops.count("Conv") - len(convs),  # the memory bank's Gaussian blur
    }


def onnx_scores(path: Path, samples: Sequence[data.Sample], image_size: int, batch_size: int = 8,
                threads: int | None = None) -> tuple[np.ndarray, float]:
    """(image scores [n] float64, smallest anomaly-map value) of an exported model on the given images."""
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    reader = FramesReader(samples, image_size, batch_size)
    scores, low = [], float("inf")
    while (feed := reader.get_next()) is not None:
        amap, score = sess.run(["anomaly_map", "score"], feed)
        scores.append(score.astype(np.float64))
        low = min(low, float(amap.min()))
    return np.concatenate(scores), low


class _DropHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_hint() -> Iterator[None]:
    """The quantizer logs (on the root logger) a hint to run its shape-inference pre-processing first; the exported
    graph is already constant-folded with static shapes but for the batch, and quantizes without it, so the hint is
    dropped rather than shown to every user of `etstpm export --int8`."""
    root, f = logging.getLogger(), _DropHint()
    root.addFilter(f)  # the quantizer calls logging.warning(): records of the root logger pass its filters
    try:
        yield
    finally:
        root.removeFilter(f)


def _quantize_static(fp32_path: Path, out_path: Path, reader: FramesReader, nodes: list[str], symmetric: bool) -> None:
    quantize_static(
        str(fp32_path), str(out_path), reader, quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(BACKBONE_OP_TYPES), nodes_to_quantize=nodes, per_channel=True,
        # 7-bit weights for `cpu` (uint8 x int8): x86 CPUs without VNNI (AVX2 only) multiply u8 x s8 with VPMADDUBSW,
        # whose int16 pair sums saturate with full-range weights (docs/training.md, INT8 export).
        reduce_range=not symmetric,
        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        # Not CalibMaxIntermediateOutputs: onnxruntime 1.32's MinMax calibrator clears what it collected every that
        # many batches without folding it into the ranges (and fails when the count divides the batches), so every
        # calibration activation stays in memory: about 50 MB per image for STPM at 256 px, hence a few dozen images.
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
        calibration_providers=["CPUExecutionProvider"],
    )
