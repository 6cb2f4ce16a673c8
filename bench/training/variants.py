"""Measured candidate changes to the image score and to the input, on one dataset, against the default.

The issue asks for each change towards the MTD target to be justified and measured. Two kinds:

  score RUN DATA CATEGORY --json OUT
      Anomaly maps of a finished run on the test set, then the image AUROC of several image-score rules over the
      same maps (the default is `max`: the maximum of the product map). Nothing is retrained. Also: what the
      default score of the good test images goes with (Pearson correlation with the image's mean grey level, its
      share of saturated pixels >= 250, and |log aspect ratio|), to see what drives false rejects.

  input DATA CATEGORY --variant V --epochs E --json OUT
      Trains a plain-STPM student from scratch (ImageNet teacher, seed 0, the 10 % calibration hold-out left out,
      the paper's SGD settings) on inputs prepared one way, then the image AUROC of the default score:
        squash       the default: every image resized to S x S (the baseline for the others, same epochs)
        standardize  per-image intensity standardisation (zero mean, unit std over all pixels and channels)
                     instead of ImageNet mean/std: removes global exposure differences between images
        letterbox    keep the aspect ratio (longer side S) and mirror-pad to S x S instead of squashing (only
                     image AUROC is reported: pixel metrics would first need the padding left out)
        photometric  the default inputs plus random exposure gain (0.6-1.6) and contrast (0.7-1.4) per image
                     during student training, clipped to the valid range (so it also creates saturated areas)

Neither kind changes a default; a variant would become one only if it helps on every dataset measured.
Run with the project venv, e.g.  .venv/bin/python bench/training/variants.py score /work/runs/mtd-stpm \
../shared/data/mtd magnetic_tile --json bench/results/variants/mtd-stpm-e15-scores.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.functional import gaussian_blur

from etstpm import IMAGENET_MEAN, IMAGENET_STD, data, metrics
from etstpm.backbone import FeatureExtractor
from etstpm.evaluate import machine_info
from etstpm.methods.stpm.model import ETSTPM
from etstpm.methods.stpm.student import StudentConfig, train_student
from etstpm.run import load_run
from etstpm.weights import load_resnet18

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


# ---- image-score rules over per-level maps [N, 3, H, W] -------------------------------------------------------

def score_rules(levels: np.ndarray) -> dict[str, np.ndarray]:
    n = len(levels)
    prod = levels.prod(axis=1)
    flat = prod.reshape(n, -1)
    top = max(1, flat.shape[1] // 100)
    return {
        "max": flat.max(1),  # the default (paper)
        # 33 = 2 * round(4 sigma) + 1 taps, reflect padding (torchvision's): the blur anomalib applies to STPM maps.
        "max_gaussian_sigma4": gaussian_blur(torch.from_numpy(prod)[:, None], [33, 33], [4.0, 4.0])
        .flatten(1).amax(1).numpy(),
        "top1pct_mean": np.sort(flat, axis=1)[:, -top:].mean(1),
        "mean": flat.mean(1),
        "max_minus_median": flat.max(1) - np.median(flat, axis=1),
        "max_over_median": flat.max(1) / np.median(flat, axis=1),
        "max_sum_of_levels": levels.sum(axis=1).reshape(n, -1).max(1),
        "max_layer1": levels[:, 0].reshape(n, -1).max(1),
        "max_layer2": levels[:, 1].reshape(n, -1).max(1),
        "max_layer3": levels[:, 2].reshape(n, -1).max(1),
        "max_without_16px_border": prod[:, 16:-16, 16:-16].reshape(n, -1).max(1),
    }


def auroc_table(labels: np.ndarray, defects: list[str], scores: dict[str, np.ndarray]) -> dict:
    d = np.asarray(defects, dtype=object)
    out = {}
    for name, s in scores.items():
        per = {k: metrics.image_auroc(labels[(d == k) | (d == "good")], s[(d == k) | (d == "good")])
               for k in sorted(set(defects) - {"good"})}
        out[name] = {"image_auroc": metrics.image_auroc(labels, s), "per_defect": per}
    return out


# ---- input variants ------------------------------------------------------------------------------------------

def letterbox(path: str, mode: str, size: int, resample: int) -> np.ndarray:
    """Resize so the longer side is `size`, keeping the aspect ratio, then mirror-pad to size x size."""
    with Image.open(path) as im:
        im = im.convert(mode)
        w, h = im.size
        k = size / max(w, h)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        a = np.asarray(im.resize((nw, nh), resample))
    ph, pw = size - nh, size - nw
    pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)) + (((0, 0),) if a.ndim == 3 else ())
    return np.pad(a, pad, mode="symmetric")


class LetterboxDataset(data.AnomalyDataset):
    def decode(self, path: str) -> np.ndarray:
        return letterbox(path, "RGB", self.image_size, Image.BILINEAR)


class StandardizedDataset(data.AnomalyDataset):
    def __getitem__(self, i: int) -> dict:
        d = super().__getitem__(i)
        raw = d["image"] * _STD[0] + _MEAN[0]
        d["image"] = (raw - raw.mean()) / (raw.std() + 1e-3)
        return d


class PhotometricDataset(data.AnomalyDataset):
    """Random exposure gain and contrast per image; only for training (the test set uses the plain dataset)."""

    def __getitem__(self, i: int) -> dict:
        d = super().__getitem__(i)
        raw = d["image"] * _STD[0] + _MEAN[0]
        gain = float(np.exp(np.random.uniform(np.log(0.6), np.log(1.6))))
        contrast = float(np.exp(np.random.uniform(np.log(0.7), np.log(1.4))))
        m = raw.mean()
        raw = (((raw - m) * contrast + m) * gain).clamp(0, 1)
        d["image"] = (raw - _MEAN[0]) / _STD[0]
        return d


VARIANTS = {
    "squash": (data.AnomalyDataset, data.AnomalyDataset),
    "standardize": (StandardizedDataset, StandardizedDataset),
    "letterbox": (LetterboxDataset, LetterboxDataset),
    "photometric": (PhotometricDataset, data.AnomalyDataset),
}


@torch.no_grad()
def level_maps(model: ETSTPM, dataset: data.AnomalyDataset) -> tuple[np.ndarray, np.ndarray, list[str]]:
    model.eval()
    maps, labels, defects = [], [], []
    for b in DataLoader(dataset, batch_size=16):
        maps.append(torch.cat(model.level_maps(b["image"]), 1).numpy())
        labels += [int(v) for v in b["label"]]
        defects += list(b["defect"])
    return np.concatenate(maps), np.asarray(labels), defects


def train_variant(args) -> dict:
    train_cls, test_cls = VARIANTS[args.variant]
    part, _holdout = data.split_holdout(data.train_samples(args.data, args.category), 0.1, 0)
    resnet, _ = load_resnet18(args.weights)
    teacher = FeatureExtractor(resnet)
    torch.manual_seed(0)
    np.random.seed(0)
    model = ETSTPM(teacher, FeatureExtractor())
    train_ds = train_cls(args.data, args.category, "train", args.image_size, samples=part, cache=True)
    cfg = StudentConfig(epochs=args.epochs, cache_teacher=args.variant != "photometric")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        history = train_student(model, train_ds, cfg, torch.device("cpu"), Path(tmp), 0, show_progress=True)
    train_s = time.perf_counter() - t0
    levels, labels, defects = level_maps(model, test_cls(args.data, args.category, "test", args.image_size))
    return {"kind": "input", "variant": args.variant, "epochs": args.epochs, "image_size": args.image_size,
            "train_images": len(part), "student_history": history, "train_wall_s": round(train_s, 1),
            "result": auroc_table(labels, defects, {"max": score_rules(levels)["max"]})["max"]}


def good_image_correlations(dataset: data.AnomalyDataset, labels: np.ndarray, score: np.ndarray) -> dict:
    """Pearson r between the good test images' scores and properties of the original (unresized) image."""
    good = np.flatnonzero(labels == 0)
    props: dict[str, list[float]] = {"mean_grey_level": [], "saturated_share": [], "abs_log_aspect_ratio": []}
    for i in good:
        with Image.open(dataset.samples[i].path) as im:
            grey = np.asarray(im.convert("L"), dtype=np.float32)
        props["mean_grey_level"].append(float(grey.mean()))
        props["saturated_share"].append(float((grey >= 250).mean()))
        props["abs_log_aspect_ratio"].append(abs(float(np.log(grey.shape[1] / grey.shape[0]))))
    # None where a property does not vary (e.g. all images the same size): r is undefined there.
    return {k: float(np.corrcoef(score[good], v)[0, 1]) if np.std(v) > 0 else None for k, v in props.items()}


def score_run(args) -> dict:
    model, meta = load_run(args.run)
    ds = data.AnomalyDataset(args.data, args.category, "test", int(meta["image_size"]))
    levels, labels, defects = level_maps(model, ds)
    rules = score_rules(levels)
    return {"kind": "score", "run": str(args.run), "finetune": meta.get("finetune"),
            "epochs": meta.get("epochs_done"), "image_size": meta["image_size"],
            "rules": auroc_table(labels, defects, rules),
            "good_score_correlation": good_image_correlations(ds, labels, rules["max"])}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("score")
    s.add_argument("run")
    s.add_argument("data")
    s.add_argument("category")
    s.add_argument("--json", required=True)
    i = sub.add_parser("input")
    i.add_argument("data")
    i.add_argument("category")
    i.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    i.add_argument("--epochs", type=int, default=8)
    i.add_argument("--image-size", type=int, default=256)
    shared = Path(os.environ.get("ETSTPM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    i.add_argument("--weights", default=str(shared / "weights" / "resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth"))
    i.add_argument("--json", required=True)
    for sp in (s, i):
        sp.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = score_run(args) if args.kind == "score" else train_variant(args)
    out |= {"data": str(args.data), "category": args.category, "protocol": "leakage-free", "seed": 0,
            "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(torch.device("cpu")),
            "command": "bench/training/variants.py " + " ".join(argv)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    rows = out["rules"] if args.kind == "score" else {args.variant: out["result"]}
    if args.kind == "score":
        print("good test images, r(score, property):", out["good_score_correlation"])
    for name, r in rows.items():
        per = " ".join(f"{k} {v:.3f}" for k, v in r["per_defect"].items())
        print(f"{name:26s} image AUROC {r['image_auroc']:.3f}   {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
