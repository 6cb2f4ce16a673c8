"""Bank size and projected feature space against quality: what a faster memory bank costs in detection.

    .venv/bin/python bench/training/membank_bank.py --data ROOT --category NAME --weights W --cache DIR --json OUT \
        [--sizes 1024 2048 4096 0 | --ratios 0.01 0.02] [--dims 0 192 128 64] [--teacher RUN/teacher.pt]

The exported model's time a frame is the backbone plus the nearest-neighbour step (1,024 patches x bank rows x
feature width at 256 px), so the two levers are the number of bank rows and the width. This script measures their
quality cost on one dataset, with everything else as `etstpm train --method membank` does it (same hold-out split,
same features, same coreset: greedy k-center picks come in order, so every smaller bank is a prefix of a larger
one; size 0 = the default bank size, 1 % of the training patches; --ratios gives sizes as `--coreset-ratio` does,
with the same floor). Widths: PCA of the training patches (normal
images only, the bank's own training set), distances measured between projected vectors; 0 = the full width.

The patch features of the training and test images are computed once and kept in --cache. Test labels and masks are
used only to compute the AUROCs.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from etstpm import data, metrics
from etstpm.backbone import FeatureExtractor
from etstpm.methods.membank import MembankConfig
from etstpm.methods.membank.coreset import greedy_coreset
from etstpm.methods.membank.fit import bank_size, extract_patches, pca_directions
from etstpm.methods.membank.model import GaussianBlur
from etstpm.weights import load_resnet18


def teacher_of(weights: str, state: str | None) -> FeatureExtractor:
    if state:
        t = FeatureExtractor()
        t.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
        return t.eval()
    resnet, _ = load_resnet18(weights)
    return FeatureExtractor(resnet).eval()


def cached_features(a: argparse.Namespace, cfg: MembankConfig) -> dict:
    path = a.cache / "features.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    teacher = teacher_of(a.weights, a.teacher)
    all_train = data.train_samples(a.data, a.category)
    train_part, _ = data.split_holdout(all_train, 0.1, a.seed)  # train.py's defaults: 10 % hold-out, seed 0
    dev = torch.device("cpu")
    t0 = time.perf_counter()
    train = extract_patches(teacher, data.AnomalyDataset(a.data, a.category, "train", a.size, samples=train_part),
                            cfg, dev)
    t_train = time.perf_counter() - t0
    test_ds = data.AnomalyDataset(a.data, a.category, "test", a.size)
    test = extract_patches(teacher, test_ds, cfg, dev)
    items = [test_ds[i] for i in range(len(test_ds))]
    z = {"train": train, "test": test, "train_images": len(train_part), "features_s": round(t_train, 1),
         "labels": np.asarray([it["label"] for it in items]), "defects": [it["defect"] for it in items],
         "has_mask": np.asarray([bool(it["has_mask"]) for it in items]),
         "masks": torch.stack([it["mask"][0] > 0.5 for it in items]).numpy()}
    a.cache.mkdir(parents=True, exist_ok=True)
    torch.save(z, path)
    return z


def cached_coreset(a: argparse.Namespace, feats: torch.Tensor, m: int,
                   cfg: MembankConfig) -> tuple[torch.Tensor, dict]:
    """(the first m greedy picks, {picks, s} of the run that made them); a cached longer run serves (the picks of a
    smaller coreset are its prefix)."""
    for path in sorted(a.cache.glob("coreset-*.pt"), key=lambda p: int(p.stem.split("-")[1])):
        if int(path.stem.split("-")[1]) >= m:
            z = torch.load(path, weights_only=False)
            return z["idx"][:m], {"picks": int(z["idx"].numel()), "s": round(z["s"], 1)}
    path = a.cache / f"coreset-{m}.pt"
    t0 = time.perf_counter()
    idx = greedy_coreset(feats, m, cfg.proj_dim, a.seed)
    s = time.perf_counter() - t0
    torch.save({"idx": idx, "s": s}, path)
    return idx, {"picks": m, "s": round(s, 1)}


def random_directions(width: int, dim: int, seed: int) -> torch.Tensor:
    """[width, dim] Gaussian random projection scaled by 1/sqrt(dim) (distances kept in expectation)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(width, dim, generator=g) / dim ** 0.5


def nearest(q: torch.Tensor, bank: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Euclidean distance of each row of q to its nearest bank row (as the exported model: matmul, then min)."""
    bsq = (bank * bank).sum(1)
    out = torch.empty(q.shape[0])
    for s in range(0, q.shape[0], chunk):
        x = q[s:s + chunk]
        d = (bsq[None] - 2.0 * (x @ bank.t())).amin(1) + (x * x).sum(1)
        out[s:s + chunk] = d.clamp_min(0.0).sqrt()
    return out


def evaluate(dist: torch.Tensor, z: dict, size: int, cfg: MembankConfig) -> dict:
    """Image AUROC (the default score rule) overall and per defect type, pixel AUROC; dist [N, 1, h, w]."""
    blur = GaussianBlur(cfg.sigma)
    h, w = dist.shape[-2:]
    maps = torch.cat([blur(F.interpolate(dist[i:i + 32], size=(size, size), mode="bilinear", align_corners=False))
                      for i in range(0, len(dist), 32)])
    px = cfg.score_border * size // h
    scores = maps[..., px:size - px, px:size - px].flatten(1).amax(1).double().numpy()
    labels, defects = z["labels"], np.asarray(z["defects"])
    per = {}
    for name in sorted(set(defects.tolist()) - {"good"}):
        sel = (defects == name) | (labels == 0)
        per[name] = float(roc_auc_score(labels[sel], scores[sel]))
    out = {"image_auroc": float(roc_auc_score(labels, scores)), "per_defect": per, "pixel_auroc": None}
    hm = z["has_mask"]
    if hm.any() and z["masks"][hm].any():
        out["pixel_auroc"] = metrics.pixel_auroc(z["masks"][hm], maps[torch.from_numpy(hm)][:, 0].numpy())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--weights", required=True, help="ImageNet ResNet-18 weights (as etstpm train --weights)")
    ap.add_argument("--teacher", default=None, help="a fine-tuned teacher's state (RUN/teacher.pt) instead")
    ap.add_argument("--cache", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 0])
    ap.add_argument("--ratios", type=float, nargs="+", default=None, help="bank sizes as coreset ratios instead")
    ap.add_argument("--dims", type=int, nargs="+", default=[0, 192, 128, 64])
    ap.add_argument("--projection", choices=("pca", "random"), default="pca",
                    help="pca: leading principal directions of the training patches; random: Gaussian (JL)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    cfg = MembankConfig()
    z = cached_features(a, cfg)
    train, test = z["train"], z["test"]
    default_m = bank_size(train.shape[0], cfg)
    if a.ratios:
        sizes = sorted({bank_size(train.shape[0], replace(cfg, coreset_ratio=r)) for r in a.ratios})
    else:
        sizes = sorted({default_m if s == 0 else min(s, train.shape[0]) for s in a.sizes})
    idx, coreset_s = cached_coreset(a, train, max(sizes), cfg)
    n, hw = len(z["labels"]), test.shape[0] // len(z["labels"])
    side = int(round(hw ** 0.5))
    cells = []
    for dim in a.dims:
        proj = None
        if 0 < dim < train.shape[1] and a.projection == "pca":
            proj = pca_directions(train, dim)
        elif 0 < dim < train.shape[1]:
            proj = random_directions(train.shape[1], dim, a.seed)
        q = test if proj is None else test @ proj
        for m in sizes:
            bank = train[idx[:m]]
            if proj is not None:
                bank = bank @ proj
            t0 = time.perf_counter()
            dist = nearest(q, bank).view(n, 1, side, side)
            nn_s = time.perf_counter() - t0
            r = evaluate(dist, z, a.size, cfg)
            cell = {"bank_size": m, "dim": int(bank.shape[1]), "macs_per_frame": hw * m * int(bank.shape[1]),
                    "nn_s_test_set": round(nn_s, 2)} | r
            cells.append(cell)
            pix = "-" if r["pixel_auroc"] is None else f"{r['pixel_auroc']:.4f}"
            print(f"{a.category:<14} bank {m:>5} dim {cell['dim']:>3}  image {r['image_auroc']:.4f}  pixel {pix}",
                  flush=True)
    out = {"format": "etstpm-membank-bank/1", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "data": a.data, "category": a.category, "teacher": a.teacher or "imagenet", "image_size": a.size,
           "seed": a.seed, "train_images": z["train_images"], "patches": int(train.shape[0]),
           "default_bank_size": default_m, "coreset": coreset_s, "features_train_s": z["features_s"],
           "n_images": n, "n_good": int((z["labels"] == 0).sum()), "score_rule": {"border": cfg.score_border,
                                                                                 "sigma": cfg.sigma},
           "projection": ("PCA of the training patches (normal images only)" if a.projection == "pca"
                          else "Gaussian random projection"), "cells": cells}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
