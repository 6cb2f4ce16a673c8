"""Image-score rules of a memory-bank run, measured on one test set from the same patch-distance maps.

    .venv/bin/python bench/training/membank_rules.py RUN --data ROOT --category NAME --json OUT [--maps CACHE.pt]

The expensive part (every test image's nearest-bank distances, [N, 1, 32, 32] at 256 px) is computed once (and kept in
--maps if given); each rule then scores the same maps. Rules: the maximum or the mean of the largest share of the
smoothed map (what the exported model computes), leaving out a band of 0, 1 or 2 patch strides at the image edge; and
the same on the raw 32x32 patch distances. Image AUROC overall and per defect type; test labels are used only there.
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from etstpm import data
from etstpm.run import load_run


def patch_maps(run: Path, root: str, category: str) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    model, meta = load_run(run)
    ds = data.AnomalyDataset(root, category, "test", meta["image_size"])
    maps, labels, defects = [], [], []
    with torch.no_grad():
        for i in range(0, len(ds), 16):
            items = [ds[j] for j in range(i, min(i + 16, len(ds)))]
            maps.append(model.patch_distances(model.embed(torch.stack([it["image"] for it in items]))))
            labels += [it["label"] for it in items]
            defects += [it["defect"] for it in items]
    return torch.cat(maps), np.asarray(labels), defects


def auroc(labels: np.ndarray, defects: list[str], scores: np.ndarray) -> dict:
    d = np.asarray(defects)
    out = {"image_auroc": float(roc_auc_score(labels, scores)), "per_defect": {}}
    for name in sorted(set(defects) - {"good"}):
        sel = (d == name) | (labels == 0)
        out["per_defect"][name] = float(roc_auc_score(labels[sel], scores[sel]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--maps", type=Path, default=None, help="cache of the patch-distance maps (read if present)")
    a = ap.parse_args()
    if a.maps is not None and a.maps.is_file():
        z = torch.load(a.maps, weights_only=False)
        dist, labels, defects = z["d"], np.asarray(z["y"]), list(z["defects"])
    else:
        dist, labels, defects = patch_maps(a.run, a.data, a.category)
        if a.maps is not None:
            torch.save({"d": dist, "y": labels, "defects": defects}, a.maps)
    model, meta = load_run(a.run)
    size, (h, w) = meta["image_size"], dist.shape[-2:]
    smooth = torch.cat([model.blur(F.interpolate(dist[i:i + 64], size=(size, size), mode="bilinear",
                                                 align_corners=False)) for i in range(0, len(dist), 64)])
    rules = {}
    for border in (0, 1, 2):
        px = border * size // h
        inner = smooth[..., px:size - px, px:size - px].flatten(1)
        raw = dist[..., border:h - border, border:w - border].flatten(1)
        for share in (0.0, 0.003, 0.01, 0.03):
            k = max(1, int(round(share * inner.shape[1])))
            s = inner.amax(1) if share == 0 else inner.topk(k, 1).values.mean(1)
            rules[f"map border={border} top={share}"] = auroc(labels, defects, s.double().numpy())
        for k in (1, 3, 10):
            rules[f"patches border={border} top-k={k}"] = auroc(labels, defects,
                                                                 raw.topk(k, 1).values.mean(1).double().numpy())
    # Where each image's largest patch distance lies: share within two patches of the grid's edge.
    top = dist.flatten(1).argmax(1)
    r, c = top // w, top % w
    at_edge = ((r < 2) | (r >= h - 2) | (c < 2) | (c >= w - 2)).numpy()
    edge = {"good": float(at_edge[labels == 0].mean()), "defective": float(at_edge[labels == 1].mean())}
    out = {"format": "etstpm-membank-rules/1", "kind": "membank-score",
           "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "run": str(a.run),
           "data": a.data, "category": a.category, "bank_size": (meta.get("membank") or {}).get("bank_size"),
           "n_images": int(len(labels)), "n_good": int((labels == 0).sum()),
           "max_patch_within_2_of_edge": edge, "rules": rules}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=2) + "\n")
    for name, r in rules.items():
        print(f"{a.category:<14} {name:<32} {r['image_auroc']:.4f}")


if __name__ == "__main__":
    main()
