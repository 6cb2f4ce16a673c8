"""Score fusion, measured: an STPM run's map and a memory-bank run's map, each scaled by its own normal hold-out,
combined by mean or by max, against each alone, on one test set.

    .venv/bin/python bench/training/fusion.py STPM_RUN MEMBANK_RUN --data ROOT --category NAME --json OUT

Both runs must come from the same data, category, seed and hold-out (so the hold-out is normal training images that
neither run fitted on). Each map is divided by the mean image score of its method on the hold-out: one "typical
normal maximum" becomes 1 for both, whatever the methods' units (1-cos products vs feature distances). Nothing
here looks at test labels except the metrics themselves.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from etstpm import data, metrics
from etstpm.calibrate import holdout_samples, score_dataset
from etstpm.evaluate import predict
from etstpm.run import load_run, run_method


def _scale(model, meta: dict) -> float:
    ds = data.AnomalyDataset(meta["data"], meta["category"], "train", meta["image_size"], samples=holdout_samples(meta))
    scores, _, _ = score_dataset(model, ds)
    return float(scores.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stpm_run", type=Path)
    ap.add_argument("membank_run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--json", required=True, type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    torch.set_grad_enabled(False)
    (m_s, meta_s), (m_b, meta_b) = load_run(a.stpm_run), load_run(a.membank_run)
    if (run_method(meta_s), run_method(meta_b)) != ("stpm", "membank"):
        raise SystemExit("give an stpm run, then a membank run")
    for k in ("category", "image_size", "seed", "holdout_images"):
        if meta_s.get(k) != meta_b.get(k):
            raise SystemExit(f"the runs differ in {k}: fusion needs the same data split")
    ds = data.AnomalyDataset(a.data, a.category, "test", meta_s["image_size"])
    ps, pb = predict(m_s, ds, torch.device("cpu"), show_progress=False), predict(m_b, ds, torch.device("cpu"),
                                                                                show_progress=False)
    ks, kb = _scale(m_s, meta_s), _scale(m_b, meta_b)
    maps = {"stpm": ps["maps"], "membank": pb["maps"],
            "fusion-mean": 0.5 * (ps["maps"] / ks + pb["maps"] / kb),
            "fusion-max": np.maximum(ps["maps"] / ks, pb["maps"] / kb)}
    out = {"format": "etstpm-fusion/1", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "stpm_run": str(a.stpm_run), "membank_run": str(a.membank_run), "data": a.data, "category": a.category,
           "stpm_epochs": meta_s.get("epochs_done"),
           "stpm_schedule": (meta_s["config"]["student"] or {}).get("schedule"),
           "seed": meta_s.get("seed"), "holdout_scale": {"stpm": ks, "membank": kb}, "results": {}}
    for name, m in maps.items():
        scores = m.reshape(len(m), -1).max(1).astype(np.float64)
        r = metrics.evaluate_scores(ps["labels"], ps["defects"], scores, ps["masks"], m, ps["has_mask"])
        out["results"][name] = {k: r[k] for k in ("image_auroc", "pixel_auroc", "aupro")}
        out["results"][name]["per_defect_image_auroc"] = {d: v["image_auroc"] for d, v in r["per_defect"].items()}
        print(f"{a.category:<14} {name:<12} image {r['image_auroc']:.4f}  pixel "
              f"{r['pixel_auroc'] if r['pixel_auroc'] is None else round(r['pixel_auroc'], 4)}  "
              f"AU-PRO {r['aupro'] if r['aupro'] is None else round(r['aupro'], 4)}")
    out["wall_time_s"] = round(time.perf_counter() - t0, 1)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
