"""`etstpm calibrate`: decision threshold and score normalization from normal images only (see docs/model-format.md).

- normal-quantile (default): threshold = (1 - frr) quantile of the image scores of the held-out part of train/good,
  i.e. the target false-reject rate on normal parts;
- f1-optimal: given a labelled validation set (MVTec layout, its test/ folder) that is not the evaluation set,
  the threshold that maximises F1 there.
In both cases min/max of the normalization come from the held-out normal images: min = smallest anomaly-map value,
max = largest image score, so normalized(r) = clamp((r - threshold) / (max - min) + 0.5, 0, 1) puts the threshold
at 0.5.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import data
from .errors import ConfigError
from .model import ETSTPM
from .run import RunError, load_run, write_meta

log = logging.getLogger(__name__)


@torch.no_grad()
def score_dataset(model: ETSTPM, dataset: data.AnomalyDataset, device: str | torch.device = "cpu",
                  batch_size: int = 16, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """(image scores [n], labels [n], smallest anomaly-map value) for every image of `dataset`."""
    model.eval()
    scores, labels, low = [], [], float("inf")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    for batch in tqdm(loader, desc="scoring", disable=not show_progress, leave=False, dynamic_ncols=True):
        amap, score = model(batch["image"].to(device))
        scores.append(score.cpu().numpy())
        labels.append(np.asarray(batch["label"]))
        low = min(low, float(amap.min()))
    return np.concatenate(scores).astype(np.float64), np.concatenate(labels), low


def holdout_samples(meta: dict) -> list[data.Sample]:
    names = set(meta.get("holdout_images") or [])
    if not names:
        raise RunError("the run has no held-out train/good images (trained with --holdout 0); "
                       "calibrate needs them for the normalization")
    samples = [s for s in data.train_samples(meta["data"], meta["category"]) if Path(s.path).name in names]
    if len(samples) != len(names):
        raise RunError(f"held-out images of the run are missing under {meta['data']}/{meta['category']}/train/good")
    return samples


def f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, dict]:
    if labels.min() == labels.max():
        raise data.DatasetError("the validation set needs both good and defective images for an F1-optimal threshold")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return float(thresholds[best]), {"f1": float(f1[best]), "precision": float(precision[best]),
                                     "recall": float(recall[best])}


def calibrate_run(run_dir: str | Path, frr: float = 0.01, val_data: str | None = None,
                  val_category: str | None = None, device: str = "cpu", show_progress: bool = True) -> dict:
    """Compute and store meta['calibration'] = {threshold: {...}, normalization: {...}}; returns it."""
    if not 0.0 <= frr < 1.0:
        raise ConfigError(f"--frr must be in [0, 1), got {frr}")
    model, meta = load_run(run_dir, device)
    holdout = holdout_samples(meta)
    ds = data.AnomalyDataset(meta["data"], meta["category"], "train", meta["image_size"], samples=holdout)
    normal, _, low = score_dataset(model, ds, device, show_progress=show_progress)

    if val_data is not None:
        val_category = val_category or meta["category"]
        if (Path(val_data).resolve() == Path(meta["data"]).resolve() and val_category == meta["category"]
                and meta.get("protocol") != "paper (leaked)"):
            raise data.DatasetError(
                f"--val {val_data} --val-category {val_category} is the evaluation set of this run: calibrating on "
                "it would leak test labels; give a separate labelled validation folder")
        vds = data.AnomalyDataset(val_data, val_category, "test", meta["image_size"])
        vscores, vlabels, _ = score_dataset(model, vds, device, show_progress=show_progress)
        thr, details = f1_threshold(vscores, vlabels)
        method = "f1-optimal"
        details |= {"validation": f"{val_data}/{val_category}", "validation_images": len(vds)}
    else:
        thr = float(np.quantile(normal, 1.0 - frr))
        method = "normal-quantile"
        details = {"frr_target": frr, "quantile": 1.0 - frr}
    calibration = make_calibration(thr, method, details, normal, low)
    meta["calibration"] = calibration
    write_meta(run_dir, meta)
    norm = calibration["normalization"]
    log.info("calibrated %s: threshold %.6g (%s), min %.6g, max %.6g", run_dir, thr, method, norm["min"], norm["max"])
    return calibration


def make_calibration(thr: float, method: str, details: dict, normal: np.ndarray, low: float) -> dict:
    """The stored calibration: threshold + min-max normalization from the held-out normal images' scores."""
    details = details | {"holdout_images": len(normal), "holdout_false_rejects": int((normal >= thr).sum()),
                         "holdout_score_min": float(normal.min()), "holdout_score_max": float(normal.max())}
    lo, hi = low, float(normal.max())
    if hi <= lo:  # degenerate (constant maps): keep the formula finite
        hi = lo + 1e-12
    return {"threshold": {"raw": thr, "method": method, "details": details},
            "normalization": {"method": "minmax", "threshold": thr, "min": lo, "max": hi}}


def recalibrate(calibration: dict, normal: np.ndarray, low: float) -> dict:
    """The same calibration redone on another scorer's hold-out scores (e.g. an INT8 model of the run).

    normal-quantile: the threshold is recomputed with the same target false-reject rate; f1-optimal needs the labelled
    validation set, so its threshold is kept and only the normalization is redone (details say so).
    """
    t = calibration["threshold"]
    if t["method"] == "normal-quantile":
        frr = float(t["details"]["frr_target"])
        return make_calibration(float(np.quantile(normal, 1.0 - frr)), t["method"],
                                {"frr_target": frr, "quantile": 1.0 - frr}, normal, low)
    kept = {k: v for k, v in t["details"].items() if not k.startswith("holdout_")}
    return make_calibration(float(t["raw"]), t["method"], kept | {"threshold_from": "float32 model"}, normal, low)


def normalize(raw: np.ndarray | float, norm: dict) -> np.ndarray:
    """docs/model-format.md: clamp((r - threshold) / (max - min) + 0.5, 0, 1)."""
    r = np.asarray(raw, dtype=np.float64)
    return np.clip((r - norm["threshold"]) / (norm["max"] - norm["min"]) + 0.5, 0.0, 1.0)
