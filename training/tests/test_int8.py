"""`etstpm export --int8`: a QDQ model of the backbone convolutions only, same I/O as the float model, scores close to
it on real test images, calibrated on the run's training images. STPM: the shared tiny run (grid, 64 px); memory
bank: a small real fit on hazelnut_toy (64 px)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from etstpm.cli import main
from etstpm.data import AnomalyDataset
from etstpm.export import training_samples
from etstpm.quantize import BACKBONE_PREFIXES
from etstpm.run import read_meta


@pytest.fixture(scope="module")
def bank_run(tmp_path_factory, weights_file: Path, hazelnut_root: Path) -> Path:
    run = tmp_path_factory.mktemp("mb8") / "run"
    assert main(["train", "--data", str(hazelnut_root), "--category", "hazelnut_toy", "--weights", str(weights_file),
                 "--out", str(run), "--method", "membank", "--image-size", "64", "--coreset-min", "128",
                 "--calibration", "holdout", "--no-progress"]) == 0  # hold-out: the INT8 threshold is redone
    return run


def _export(run: Path, out: Path, *extra: str) -> dict:
    assert main(["export", "--run", str(run), "--out", str(out), *extra]) == 0
    return json.loads((out / "model.json").read_text())


def _io(path: Path) -> list[tuple[str, int, list]]:
    g = onnx.load(str(path)).graph
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim])
            for v in list(g.input) + list(g.output)]


def _scores(path: Path, frames: np.ndarray, fuse: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """fuse=False: no graph optimisation, so Q/DQ run as written around float kernels (the graph's own arithmetic)
    instead of being fused into onnxruntime's integer kernels (QLinearConv), whose x86 code differs by CPU."""
    so = ort.SessionOptions()
    if not fuse:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    amap, score = sess.run(["anomaly_map", "score"], {"frames": frames})
    return amap, score


def _check_int8(run: Path, tmp_path: Path, data_root: Path, category: str, target: str) -> onnx.ModelProto:
    fp = _export(run, tmp_path / "fp32")
    q = _export(run, tmp_path / target, "--int8", target, "--int8-calibration-images", "8")
    qpath = tmp_path / target / "model.onnx"
    onnx.checker.check_model(str(qpath), full_check=True)

    # The daemon's contract: same inputs and outputs (names, dtypes, shapes) as the float model.
    assert _io(qpath) == _io(tmp_path / "fp32" / "model.onnx")
    assert fp["precision"] == "fp32" and q["precision"] == "int8" and q["input"] == fp["input"]

    # QDQ around the backbone only: every quantized weight feeds a pyramid node, every pyramid Conv has one, and the
    # map math (the bank's MatMul/ReduceMin, the upsampling, the blur's Convs) reads no dequantized tensor.
    proto = onnx.load(str(qpath))
    g = proto.graph
    inits = {t.name for t in g.initializer}
    produced_by = {o: n for n in g.node for o in n.output}
    weight_dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    readers = [n for n in g.node if any(i in weight_dq for i in n.input)]
    assert readers and all(n.name.startswith(BACKBONE_PREFIXES) for n in readers)
    backbone_convs = [n for n in g.node if n.op_type == "Conv" and n.name.startswith(BACKBONE_PREFIXES)]
    assert backbone_convs and all(n.input[1] in weight_dq for n in backbone_convs)
    assert q["quantization"]["quantized_convs"] == len(backbone_convs)
    for n in g.node:
        if n.op_type in ("MatMul", "ReduceMin", "Resize") or (n.op_type == "Conv"
                                                               and not n.name.startswith(BACKBONE_PREFIXES)):
            assert not any(i in produced_by and produced_by[i].op_type == "DequantizeLinear" for i in n.input), n.name
    zero_points = [numpy_helper.to_array(t) for t in g.initializer if t.name.endswith("_zero_point")]
    activation_zp = [z for z in zero_points if z.ndim == 0]  # per-tensor: activations (weights are per channel)
    assert activation_zp
    if target == "tensorrt":  # TensorRT's explicit quantization: int8, zero point 0
        assert all(z.dtype == np.int8 and int(z) == 0 for z in activation_zp)
    else:
        assert all(z.dtype == np.uint8 for z in activation_zp)

    # Calibrated on the run's own training images (hold-out excluded, never test images); threshold redone.
    meta = read_meta(run)
    cal = q["quantization"]["calibration_set"]
    assert cal["of"] == len(training_samples(meta)) == meta["train_images"] and cal["images"] == 8
    assert not {Path(s.path).name for s in training_samples(meta)} & set(meta["holdout_images"])
    assert q["threshold"]["method"] == fp["threshold"]["method"]
    assert q["quantization"]["float32_threshold"] == fp["threshold"]["raw"]

    # Scores close to the float model's on real test images (good and defective).
    ds = AnomalyDataset(data_root, category, "test", meta["image_size"])
    frames = np.stack([ds.rgb(i) for i in range(len(ds))])
    fmap, fscore = _scores(tmp_path / "fp32" / "model.onnx", frames)
    qmap, qscore = _scores(qpath, frames)
    assert qmap.shape == fmap.shape and qmap.dtype == np.float32 and qscore.dtype == np.float32
    assert np.abs(qscore - fscore).max() <= 0.1 * np.abs(fscore).max()
    assert np.corrcoef(qscore, fscore)[0, 1] > 0.95
    # The integer kernels compute what the Q/DQ graph says on this CPU too: without VNNI (AVX2 only) onnxruntime
    # multiplies uint8 x int8 with VPMADDUBSW, whose int16 sums saturate unless the weights are 7-bit (`cpu` target).
    # Measured on an AVX2-only CPU: full-range `cpu` weights 36 % of the largest score, 7-bit 0.13 %; `tensorrt`
    # (partly fused on CPU) 0.6 % memory bank, 2.5 % STPM.
    _, qref = _scores(qpath, frames, fuse=False)
    assert np.abs(qscore - qref).max() <= 0.05 * np.abs(qref).max()
    assert abs(q["threshold"]["raw"] - fp["threshold"]["raw"]) <= 0.1 * fp["threshold"]["raw"]
    one_map, _ = _scores(qpath, frames[:1])  # dynamic batch kept
    assert one_map.shape[0] == 1
    return proto


def test_int8_stpm_for_tensorrt(tiny_run, tmp_path: Path) -> None:
    run, root, category = tiny_run
    _check_int8(run, tmp_path, root, category, "tensorrt")


def test_int8_membank_both_targets_keep_the_nearest_neighbour_float(bank_run: Path, hazelnut_root: Path,
                                                                    tmp_path: Path) -> None:
    for target in ("tensorrt", "cpu"):
        proto = _check_int8(bank_run, tmp_path / target, hazelnut_root, "hazelnut_toy", target)
        # The bank as the model holds it, [-2 B | ||B||^2] transposed: an initializer or a folded Constant node.
        consts = list(proto.graph.initializer) + [n.attribute[0].t for n in proto.graph.node
                                                  if n.op_type == "Constant" and n.attribute[0].name == "value"]
        bank = [t for t in consts if sorted(t.dims) == [128, 385]]
        assert bank and bank[0].data_type == onnx.TensorProto.FLOAT  # the bank itself is not quantized


def test_int8_option_errors(tiny_run, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--run", str(tiny_run[0]), "--out", str(tmp_path / "o"), "--int8", "fp8"])
    assert "invalid choice" in capsys.readouterr().err
