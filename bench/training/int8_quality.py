"""INT8 against float32 of the same run, from the ONNX files themselves: image AUROC, pixel AUROC and AU-PRO of each
model's own maps and scores on a test set (etstpm.metrics.evaluate_scores, as `etstpm evaluate`), plus how closely
the INT8 scores follow the float ones.

    .venv/bin/python bench/training/int8_quality.py RUN --data ROOT --category NAME --models DIR --json OUT
        [--targets tensorrt cpu] [--calibration-images 32] [--threads 1]

Exports DIR/fp32 and DIR/int8-<target> from RUN (`etstpm export`, `--int8 <target>`), then scores the test set with
onnxruntime (CPU). Speed: bench/training/onnx_speed.py on the same folders.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort

from etstpm import data, metrics
from etstpm.export import export_run
from etstpm.quantize import TARGETS, Int8Config
from etstpm.run import run_method


def onnx_predict(model_dir: Path, ds: data.AnomalyDataset, threads: int, batch: int = 8) -> dict:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    n, size = len(ds), ds.image_size
    maps = np.empty((n, size, size), np.float32)
    masks = np.empty((n, size, size), bool)
    scores = np.empty(n, np.float64)
    for k in range(0, n, batch):
        idx = range(k, min(k + batch, n))
        amap, score = sess.run(["anomaly_map", "score"], {"frames": np.stack([ds.rgb(i) for i in idx])})
        maps[k:k + len(idx)], scores[k:k + len(idx)] = amap[:, 0], score
        for i in idx:
            masks[i] = ds[i]["mask"][0].numpy() > 0.5
    return {"maps": maps, "masks": masks, "scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--models", required=True, type=Path, help="folder for the exported model folders")
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    ap.add_argument("--calibration-images", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    exports = {"fp32": None} | {f"int8-{t}": Int8Config(target=t, calibration_images=a.calibration_images)
                                for t in a.targets}
    meta = json.loads((a.run / "run.json").read_text())
    ds = data.AnomalyDataset(a.data, a.category, "test", int(meta["image_size"]))
    labels = np.array([s.label for s in ds.samples])
    defects = [s.defect for s in ds.samples]
    has_mask = np.array([s.label == 0 or s.mask_path is not None for s in ds.samples])
    rows, ref = {}, None
    for name, cfg in exports.items():
        t0 = time.perf_counter()
        manifest = export_run(a.run, a.models / name, int8=cfg)
        export_s = time.perf_counter() - t0
        pred = onnx_predict(a.models / name, ds, a.threads)
        res = metrics.evaluate_scores(labels, defects, pred["scores"], pred["masks"], pred["maps"], has_mask)
        thr = manifest["threshold"]["raw"] if manifest["threshold"] else None
        row = {"model": str(a.models / name), "precision": manifest["precision"],
               "quantization": manifest.get("quantization"), "export_s": round(export_s, 1),
               "bytes": (a.models / name / "model.onnx").stat().st_size, "threshold_raw": thr,
               "image_auroc": res["image_auroc"], "pixel_auroc": res["pixel_auroc"], "aupro": res["aupro"],
               "per_defect": {k: {m: v[m] for m in ("image_auroc", "pixel_auroc", "aupro")}
                              for k, v in res["per_defect"].items()}}
        verdict = pred["scores"] >= thr if thr is not None else None
        if ref is None:
            ref = {"scores": pred["scores"], "maps": pred["maps"], "verdict": verdict, "row": row}
        else:
            r = ref["row"]
            s0 = ref["scores"]
            row["vs_fp32"] = {
                "image_auroc_delta": _delta(row["image_auroc"], r["image_auroc"]),
                "pixel_auroc_delta": _delta(row["pixel_auroc"], r["pixel_auroc"]),
                "aupro_delta": _delta(row["aupro"], r["aupro"]),
                "score_pearson": round(float(np.corrcoef(s0, pred["scores"])[0, 1]), 5),
                "score_max_rel_diff": round(float(np.abs(pred["scores"] - s0).max() / np.abs(s0).max()), 5),
                "map_mean_abs_diff_rel": round(float(np.abs(pred["maps"] - ref["maps"]).mean()
                                                     / np.abs(ref["maps"]).mean()), 5),
                "verdict_agreement": None if verdict is None or ref["verdict"] is None
                else round(float((verdict == ref["verdict"]).mean()), 4),
            }
        rows[name] = row
        print(f"{name:<14} image AUROC {_f(row['image_auroc'])}  pixel AUROC {_f(row['pixel_auroc'])}  "
              f"AU-PRO {_f(row['aupro'])}" + (f"  vs fp32 {row['vs_fp32']}" if "vs_fp32" in row else ""),
              flush=True)
        del pred
    out = {"format": "etstpm-int8-quality/1", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "bench/training/int8_quality.py " + " ".join(sys.argv[1:]),
           "run": str(a.run), "method": run_method(meta), "epochs": meta.get("epochs_done"),
           "finetune": meta.get("finetune"), "image_size": ds.image_size, "data": a.data, "category": a.category,
           "test_images": len(ds), "onnxruntime": ort.__version__, "threads": a.threads, "models": rows}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=2) + "\n")


def _delta(x: float | None, ref: float | None) -> float | None:
    return None if x is None or ref is None else round(x - ref, 5)


def _f(v: float | None) -> str:
    return "  -   " if v is None else f"{v:.4f}"


if __name__ == "__main__":
    main()
