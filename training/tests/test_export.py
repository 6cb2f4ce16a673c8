"""Export: one fused ONNX graph that onnxruntime runs like PyTorch on real images; manifest per docs/model-format.md."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from etstpm.cli import main
from etstpm.data import AnomalyDataset
from etstpm.run import load_run


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    assert main(["export", "--run", str(tiny_run[0]), "--out", str(out)]) == 0
    return out


def test_onnx_matches_pytorch_on_real_images(tiny_run, exported: Path) -> None:
    run_dir, root, category = tiny_run
    model, meta = load_run(run_dir)
    ds = AnomalyDataset(root, category, "test", meta["image_size"])
    idx = [i for i, s in enumerate(ds.samples)][:6]  # good and defective images
    frames = np.stack([ds.rgb(i) for i in idx])
    sess = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    amap, score = sess.run(["anomaly_map", "score"], {"frames": frames})
    with torch.no_grad():
        t_map, t_score = model(torch.stack([ds[i]["image"] for i in idx]))
    assert amap.dtype == np.float32 and amap.shape == (len(idx), 1, meta["image_size"], meta["image_size"])
    assert score.dtype == np.float32 and score.shape == (len(idx),)
    assert np.abs(amap - t_map.numpy()).max() <= 1e-4
    assert np.abs(score - t_score.numpy()).max() <= 1e-4
    assert np.allclose(score, amap.reshape(len(idx), -1).max(1))
    # dynamic batch: one frame alone gives the same result as inside the batch
    one_map, one_score = sess.run(None, {"frames": frames[2:3]})
    assert one_map.shape[0] == 1 and np.abs(one_map[0] - amap[2]).max() <= 1e-5


def test_graph_interface(exported: Path) -> None:
    proto = onnx.load(str(exported / "model.onnx"))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = proto.graph.input
    assert inp.name == "frames" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [64, 64, 3]
    outs = {o.name: o for o in proto.graph.output}
    assert set(outs) == {"anomaly_map", "score"}
    assert outs["anomaly_map"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in outs["anomaly_map"].type.tensor_type.shape.dim[1:]] == [1, 64, 64]
    assert len(list(exported.iterdir())) == 2  # model.onnx + model.json: one self-contained graph


def test_manifest(tiny_run, exported: Path) -> None:
    run_dir, root, category = tiny_run
    m = json.loads((exported / "model.json").read_text())
    meta = json.loads((run_dir / "run.json").read_text())
    assert m["format"] == "etstpm-model/1" and m["name"] == f"{category}-etstpm"
    assert m["onnx"]["sha256"] == hashlib.sha256((exported / "model.onnx").read_bytes()).hexdigest()
    assert m["onnx"]["file"] == "model.onnx" and m["onnx"]["opset"] >= 17
    assert m["version"].startswith(m["created"]) and m["version"].endswith(m["onnx"]["sha256"][:8])
    assert m["input"] == {"name": "frames", "layout": "NHWC", "dtype": "uint8", "color": "RGB",
                          "height": 64, "width": 64}
    assert m["outputs"] == {"anomaly_map": "anomaly_map", "score": "score"}
    assert m["threshold"] == meta["calibration"]["threshold"]
    assert m["normalization"] == meta["calibration"]["normalization"]
    t = m["training"]
    assert t["categories"] == [category] and t["data"] == str(root) and t["finetune"] == "rotation"
    assert t["protocol"] == "leakage-free" and t["epochs"] == 1 and t["image_size"] == 64 and t["seed"] == 0
    assert m["metrics"] is None


def test_export_embeds_metrics_and_refuses_uncalibrated(tiny_run, tmp_path: Path) -> None:
    metrics = {"image_auroc": 0.5, "pixel_auroc": 0.6, "aupro": 0.4, "per_defect": {}, "protocol": "leakage-free"}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    assert main(["export", "--run", str(tiny_run[0]), "--out", str(tmp_path / "o"),
                 "--metrics", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "o" / "model.json").read_text())["metrics"] == metrics
    import shutil
    run = tmp_path / "uncal"
    shutil.copytree(tiny_run[0], run)
    meta = json.loads((run / "run.json").read_text())
    meta["calibration"] = None
    (run / "run.json").write_text(json.dumps(meta))
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "o2")]) == 2
