"""onnxruntime CPU time per frame of exported model folders, measured in one run, interleaved, at batch 1 and 4;
optionally the image AUROC of each model's own ONNX scores on a test set (e.g. to check an fp16 bank).

    .venv/bin/python bench/training/onnx_speed.py MODEL_DIR [MODEL_DIR ...] --json OUT
        [--data ROOT --category NAME] [--rounds 5] [--threads 2]

Each round runs every model once per batch size over the same frames, in turn, so the machine's load (shared,
noisy) falls on all of them alike; the table reports medians over rounds and ratios to the first model.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.metrics import roc_auc_score

from etstpm import data
from etstpm.run import run_method


def session(model_dir: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--data", default=None)
    ap.add_argument("--category", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames-per-run", type=int, default=8, help="frames timed per model, batch size and round")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    manifests = [json.loads((m / "model.json").read_text()) for m in a.models]
    size = manifests[0]["input"]["height"]
    if any(m["input"]["height"] != size for m in manifests):
        raise SystemExit("all models must take the same input size")
    sessions = [session(m, a.threads) for m in a.models]
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (a.frames_per_run, size, size, 3), dtype=np.uint8)
    if a.data:
        ds = data.AnomalyDataset(a.data, a.category, "test", size)
        frames = np.stack([ds.rgb(i % len(ds)) for i in range(a.frames_per_run)])
    times: dict[tuple[int, int], list[float]] = {}
    for s in sessions:  # warm-up: first runs allocate and plan
        s.run(None, {"frames": frames[:4]})
    for _ in range(a.rounds):
        for batch in (1, 4):
            for i, s in enumerate(sessions):
                t0 = time.perf_counter()
                for j in range(0, a.frames_per_run, batch):
                    s.run(None, {"frames": frames[j:j + batch]})
                times.setdefault((i, batch), []).append(1000 * (time.perf_counter() - t0) / a.frames_per_run)

    rows = []
    for i, (m, man) in enumerate(zip(a.models, manifests)):
        row = {"model": str(m), "name": man["name"], "method": run_method(man),
               "bytes": (m / "model.onnx").stat().st_size, "bank": man.get("membank")}
        for batch in (1, 4):
            ms = statistics.median(times[(i, batch)])
            base = statistics.median(times[(0, batch)])
            row[f"ms_per_frame_b{batch}"] = round(ms, 2)
            row[f"ratio_to_first_b{batch}"] = round(ms / base, 3)
        rows.append(row)

    if a.data:  # quality of each ONNX file on the test set, from its own scores
        ds = data.AnomalyDataset(a.data, a.category, "test", size)
        labels = np.array([s.label for s in ds.samples])
        for row, s in zip(rows, sessions):
            batches = [np.stack([ds.rgb(j) for j in range(k, min(k + 8, len(ds)))]) for k in range(0, len(ds), 8)]
            scores = np.concatenate([s.run(None, {"frames": b})[1] for b in batches])
            row["onnx_image_auroc"] = round(float(roc_auc_score(labels, scores)), 4)

    out = {"format": "etstpm-onnx-speed/1", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "bench/training/onnx_speed.py " + " ".join(str(m) for m in a.models),
           "rounds": a.rounds, "frames_per_run": a.frames_per_run, "threads": a.threads, "image_size": size,
           "onnxruntime": ort.__version__, "machine": {"processor": platform.processor() or platform.machine(),
                                                       "cpu_count": os.cpu_count()},
           "data": a.data, "category": a.category, "models": rows}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=2) + "\n")
    for r in rows:
        print(f"{r['name']:<40} {r['method']:<8} {r['bytes'] / 2**20:6.1f} MiB  b1 {r['ms_per_frame_b1']:7.1f} ms "
              f"({r['ratio_to_first_b1']:.2f}x)  b4 {r['ms_per_frame_b4']:7.1f} ms/frame "
              f"({r['ratio_to_first_b4']:.2f}x)"
              + (f"  AUROC {r['onnx_image_auroc']:.4f}" if "onnx_image_auroc" in r else ""))


if __name__ == "__main__":
    main()
