"""`etstpm calibrate`: decision threshold and score normalization from good images only (docs/training.md,
Calibration; the stored fields: docs/model-format.md).

- order-statistic (default): the threshold is an order statistic of good images' scores chosen so that the
  false-reject rate on new good parts stays <= the target (--frr) with the stated confidence (--confidence);
  etstpm.conformal has the arithmetic. Too few images for that: their largest score, with the bound it does keep,
  and a warning saying how many images the target needs.
- f1-optimal: given a labelled validation set (MVTec layout, its test/ folder) that is not the evaluation set,
  the threshold that maximises F1 there.
The good images' scores come from one of (first that applies): a folder given now (`--good DIR`), the folder given
at training (`train --calib-data DIR`), the leave-fold-out scores of a memory bank (`train --calibration kfold`,
methods/membank/kfold.py), or the run's hold-out part of train/good.
min/max of the normalization come from the same good images: min = smallest anomaly-map value, max = largest image
score, so normalized(r) = clamp((r - threshold) / (max - min) + 0.5, 0, 1) puts the threshold at 0.5.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import conformal, data
from .errors import ConfigError
from .run import RunError, load_run, write_meta

log = logging.getLogger(__name__)

DEFAULT_FRR = 0.01
DEFAULT_CONFIDENCE = 0.9


@dataclass
class GoodScores:
    """Image scores of good images that the scorer was not fitted on, and where they came from."""
    scores: np.ndarray
    low: float  # smallest anomaly-map value over those images (the normalization's min)
    source: dict  # {"kind": "holdout" | "folder" | "kfold", ...}


def check_targets(frr: float, confidence: float) -> None:
    if not 0.0 < frr < 1.0:
        raise ConfigError(f"--frr must be in (0, 1), got {frr}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"--confidence must be in (0, 1), got {confidence}")


@torch.no_grad()
def score_dataset(model: nn.Module, dataset: data.AnomalyDataset, device: str | torch.device = "cpu",
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
        raise RunError("the run has no held-out train/good images (trained with --holdout 0 or k-fold/folder "
                       "calibration); give good images with `etstpm calibrate --good DIR`")
    samples = [s for s in data.train_samples(meta["data"], meta["category"]) if Path(s.path).name in names]
    if len(samples) != len(names):
        raise RunError(f"held-out images of the run are missing under {meta['data']}/{meta['category']}/train/good")
    return samples


def fitted_samples(meta: dict) -> list[data.Sample]:
    """The images the run's scorer was fitted on: train/good minus the hold-out, capped as in training."""
    held = set(meta.get("holdout_images") or [])
    samples = [s for s in data.train_samples(meta["data"], meta["category"]) if Path(s.path).name not in held]
    cap = (meta.get("config") or {}).get("max_train_images")
    return samples[:cap] if cap else samples


def folder_samples(folder: str | Path, meta: dict | None = None) -> list[data.Sample]:
    """Good images of `folder` (directly inside it, or in its train/good: the console's capture layout). With `meta`,
    refuses images the run was fitted on: their scores are low by construction and would understate the rate."""
    folder = Path(folder)
    if not folder.is_dir():
        raise data.DatasetError(f"good-image folder not found: {folder}")
    inner = folder / "train" / "good"
    direct = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in data.IMAGE_EXTENSIONS]
    files = data.list_images(inner if not direct and inner.is_dir() else folder)
    samples = [data.Sample(str(p), 0, "good", None) for p in files]
    if meta is not None:
        fitted = {Path(s.path).resolve() for s in fitted_samples(meta)}
        both = [s.path for s in samples if Path(s.path).resolve() in fitted]
        if both:
            raise data.DatasetError(f"{len(both)} of the {len(samples)} images in {folder} trained this run "
                                    f"(e.g. {both[0]}): calibration needs good images the model has not seen")
    return samples


def good_scores(model, meta: dict, good_dir: str | None, device: str | torch.device,
                show_progress: bool) -> GoodScores:
    """The calibration scores (module docstring: which source applies)."""
    folder = good_dir or meta.get("calib_data")
    if folder:
        samples = folder_samples(folder, meta)
        ds = data.AnomalyDataset(folder, "", "train", meta["image_size"], samples=samples)
        scores, _, low = score_dataset(model, ds, device, show_progress=show_progress)
        return GoodScores(scores, low, {"kind": "folder", "folder": str(folder), "images": len(samples)})
    kfold = meta.get("kfold")
    if kfold:
        names = sorted(kfold["scores"])
        return GoodScores(np.asarray([kfold["scores"][n] for n in names], dtype=np.float64), float(kfold["low"]),
                          {"kind": "kfold", "folds": kfold["folds"], "images": len(names)})
    holdout = holdout_samples(meta)
    ds = data.AnomalyDataset(meta["data"], meta["category"], "train", meta["image_size"], samples=holdout)
    scores, _, low = score_dataset(model, ds, device, show_progress=show_progress)
    return GoodScores(scores, low, {"kind": "holdout", "images": len(holdout)})


def f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, dict]:
    if labels.min() == labels.max():
        raise data.DatasetError("the validation set needs both good and defective images for an F1-optimal threshold")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return float(thresholds[best]), {"f1": float(f1[best]), "precision": float(precision[best]),
                                     "recall": float(recall[best])}


def calibrate_run(run_dir: str | Path, frr: float = DEFAULT_FRR, confidence: float = DEFAULT_CONFIDENCE,
                  val_data: str | None = None, val_category: str | None = None, good_dir: str | None = None,
                  device: str = "cpu", show_progress: bool = True) -> dict:
    """Compute and store meta['calibration'] = {threshold: {...}, normalization: {...}}; returns it."""
    check_targets(frr, confidence)
    model, meta = load_run(run_dir, device)
    good = good_scores(model, meta, good_dir, device, show_progress)

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
        details |= {"validation": f"{val_data}/{val_category}", "validation_images": len(vds)}
        calibration = make_calibration(thr, "f1-optimal", None, details, good)
    else:
        thr, guarantee = conformal.choose(good.scores, frr, confidence)
        calibration = make_calibration(thr, conformal.METHOD, guarantee.to_dict(), {}, good)
    meta["calibration"] = calibration
    write_meta(run_dir, meta)
    norm = calibration["normalization"]
    log.info("calibrated %s: threshold %.6g (%s, %d %s images), min %.6g, max %.6g", run_dir, thr,
             calibration["threshold"]["method"], good.scores.size, good.source["kind"], norm["min"], norm["max"])
    warn_if_short(calibration, str(run_dir))
    return calibration


def warn_if_short(calibration: dict | None, where: str) -> None:
    """Log the calibration's warning (too few good images for the target), if it has one."""
    w = ((calibration or {}).get("threshold") or {}).get("warning")
    if w:
        log.warning("%s: %s", where, w)


def make_calibration(thr: float, method: str, guarantee: dict | None, details: dict, good: GoodScores) -> dict:
    """The stored calibration: threshold (+ its guarantee) and min-max normalization from the good images' scores."""
    normal = good.scores
    details = details | {"source": good.source, "calibration_images": int(normal.size),
                         "calibration_false_rejects": int((normal >= thr).sum()),
                         "calibration_score_min": float(normal.min()),
                         "calibration_score_max": float(normal.max()),
                         "drift_reference": drift_reference(normal, thr)}
    lo, hi = good.low, float(normal.max())
    if hi <= lo:  # degenerate (constant maps): keep the formula finite
        hi = lo + 1e-12
    guarantee = dict(guarantee) if guarantee else None
    warning = guarantee.pop("warning", None) if guarantee else None
    return {"threshold": {"raw": thr, "method": method, "guarantee": guarantee, "warning": warning,
                          "details": details},
            "normalization": {"method": "minmax", "threshold": thr, "min": lo, "max": hi}}


DRIFT_QUANTILE = 0.9


def drift_reference(normal: np.ndarray, thr: float, q: float = DRIFT_QUANTILE) -> dict:
    """The daemon's drift reference (docs/daemon.md, "Drift"): the q quantile of the good images' scores and the share
    of the good images judged OK (score < threshold) that lie at or above it. The daemon counts its recent OK frames
    the same way; far below the threshold, so drift shows while the reject rate still looks normal."""
    raw = float(np.quantile(normal, q))
    ok = normal[normal < thr]
    share = float((ok >= raw).mean()) if ok.size else None
    return {"quantile": q, "raw": raw, "expected_share_ok": share}


def recalibrate(calibration: dict, good: GoodScores | None) -> dict:
    """The same calibration redone on another scorer's scores of the same good images (e.g. an INT8 model of the run).

    order-statistic: the same target and confidence on the new scores. f1-optimal needs the labelled validation set,
    and k-fold scores need the k banks, so there (or with `good` None) the threshold and normalization are kept and
    the details say so.
    """
    t = calibration["threshold"]
    g = t.get("guarantee")
    if good is not None and t["method"] == conformal.METHOD and g:
        thr, guarantee = conformal.choose(good.scores, float(g["frr_target"]), float(g["confidence"]))
        return make_calibration(thr, t["method"], guarantee.to_dict(), {}, good)
    if good is not None and t["method"] == "normal-quantile":  # runs calibrated before the order statistic
        frr = float(t["details"]["frr_target"])
        return make_calibration(float(np.quantile(good.scores, 1.0 - frr)), t["method"], None,
                                {"frr_target": frr, "quantile": 1.0 - frr}, good)
    if good is not None:
        kept = {k: v for k, v in t["details"].items() if not k.startswith(("calibration_", "holdout_", "source"))}
        return make_calibration(float(t["raw"]), t["method"], g, kept | {"threshold_from": "float32 model"}, good)
    out = {"threshold": dict(t), "normalization": dict(calibration["normalization"])}
    out["threshold"]["details"] = t["details"] | {"threshold_from": "float32 model (no re-scorable good images: "
                                                  "k-fold scores come from banks that are not exported)"}
    return out


def normalize(raw: np.ndarray | float, norm: dict) -> np.ndarray:
    """docs/model-format.md: clamp((r - threshold) / (max - min) + 0.5, 0, 1)."""
    r = np.asarray(raw, dtype=np.float64)
    return np.clip((r - norm["threshold"]) / (norm["max"] - norm["min"]) + 0.5, 0.0, 1.0)
