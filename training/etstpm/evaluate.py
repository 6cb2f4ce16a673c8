"""`etstpm evaluate`: score a trained run on a test set; metrics overall and per defect type, table, JSON, figures.

Metrics (see etstpm.metrics): image AUROC, pixel AUROC, AU-PRO (FPR <= 0.3, normalized), each per defect type
(that defect's images against all good images). Values are null where undefined (e.g. no masks for a defect).
If the run is calibrated, the verdict quality of its stored threshold is reported too: false-reject rate on
test/good and detection rate on the defective images (the threshold itself came from train/good only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import __version__, data, metrics
from .operating_point import frr_against_bound, operating_points
from .run import load_run, run_method

EVAL_FORMAT = "etstpm-eval/1"
LEAKED = "paper (leaked)"


def machine_info(device: torch.device) -> dict:
    """Where the numbers were measured: timings mean nothing without it."""
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


@torch.no_grad()
def predict(model, dataset: data.AnomalyDataset, device: torch.device, batch_size: int = 16,
            show_progress: bool = True) -> dict:
    """Anomaly maps, scores and ground truth for every image; times the model's forward passes alone."""
    n, size = len(dataset), dataset.image_size
    maps = np.empty((n, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    scores = np.empty(n, dtype=np.float64)
    labels, defects, has_mask, paths = [], [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    forward_s, i = 0.0, 0
    with tqdm(total=n, desc="evaluating", unit="img", disable=not show_progress, dynamic_ncols=True) as bar:
        for batch in loader:
            x = batch["image"].to(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            amap, score = model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            forward_s += time.perf_counter() - t0
            k = x.shape[0]
            maps[i:i + k] = amap[:, 0].float().cpu().numpy()
            scores[i:i + k] = score.double().cpu().numpy()
            masks[i:i + k] = batch["mask"][:, 0].numpy() > 0.5
            labels += [int(v) for v in batch["label"]]
            defects += list(batch["defect"])
            has_mask += [bool(v) for v in batch["has_mask"]]
            paths += list(batch["path"])
            i += k
            bar.update(k)
    return {"maps": maps, "masks": masks, "scores": scores, "labels": np.asarray(labels), "defects": defects,
            "has_mask": np.asarray(has_mask), "paths": paths, "forward_s": forward_s, "batch_size": batch_size}


def verdict_quality(raw_threshold: float, labels: np.ndarray, defects: list[str], scores: np.ndarray) -> dict:
    """How the stored decision (score >= threshold -> ng) does on this test set."""
    ng = scores >= raw_threshold
    good = labels == 0
    out = {
        "threshold_raw": float(raw_threshold),
        "n_good": int(good.sum()),
        "false_rejects": int((ng & good).sum()),
        "false_reject_rate": float((ng & good).sum() / good.sum()) if good.any() else None,
        "n_defective": int((~good).sum()),
        "detected": int((ng & ~good).sum()),
        "detection_rate": float((ng & ~good).sum() / (~good).sum()) if (~good).any() else None,
        "per_defect": {},
    }
    d = np.asarray(defects, dtype=object)
    for name in sorted(set(d[~good].tolist())):
        sel = d == name
        out["per_defect"][name] = {"n": int(sel.sum()), "detected": int((ng & sel).sum()),
                                   "detection_rate": float((ng & sel).sum() / sel.sum())}
    return out


def calibration_summary(cal: dict) -> dict:
    """What the stored threshold promised (docs/model-format.md, threshold.guarantee) and where it came from."""
    t = cal["threshold"]
    g = t.get("guarantee") or {}
    details = t.get("details") or {}
    return {"method": t.get("method"), "source": details.get("source"),
            "images": details.get("calibration_images", details.get("holdout_images")),
            "frr_target": g.get("frr_target", details.get("frr_target")), "confidence": g.get("confidence"),
            "k": g.get("k"), "frr_bound": g.get("frr_bound"), "target_met": g.get("target_met"),
            "images_needed": g.get("images_needed"), "warning": t.get("warning")}


def evaluate_run(run_dir: str | Path, data_root: str | Path, category: str, image_size: int | None = None,
                 device: str = "cpu", figures_dir: str | Path | None = None, batch_size: int = 16,
                 show_progress: bool = True, fpr_limit: float = 0.3, num_figure_samples: int = 2) -> dict:
    """Evaluate a finished run on `data_root/category/test`; returns the JSON-ready result dict."""
    metrics.check_fpr_limit(fpr_limit)  # a bad limit fails now, not after minutes of inference
    t_start = time.perf_counter()
    dev = _device(device)
    model, meta = load_run(run_dir, dev)
    size = int(image_size or meta["image_size"])
    dataset = data.AnomalyDataset(data_root, category, "test", size)
    pred = predict(model, dataset, dev, batch_size, show_progress)

    curves: dict = {}
    t_metrics = time.perf_counter()
    result = metrics.evaluate_scores(pred["labels"], pred["defects"], pred["scores"], pred["masks"], pred["maps"],
                                     pred["has_mask"], fpr_limit=fpr_limit, curves=curves)
    metrics_s = time.perf_counter() - t_metrics

    protocol = meta.get("protocol") or "unknown"
    walls = meta.get("wall_time_s") or {}
    n = len(dataset)
    result = {
        "format": EVAL_FORMAT,
        **result,
        "protocol": protocol,
        "leaked": protocol == LEAKED,
        "run": str(run_dir),
        "data": str(data_root),
        "category": category,
        "trained_on": {"data": meta.get("data"), "category": meta.get("category")},
        "method": run_method(meta),
        "membank": meta.get("membank"),
        "finetune": meta.get("finetune"),
        "finetune_details": meta.get("finetune_details"),
        "epochs": meta.get("epochs_done", meta.get("epochs")),
        "image_size": size,
        "trained_image_size": meta.get("image_size"),
        "seed": meta.get("seed"),
        "train_images": meta.get("train_images"),
        "train_wall_time_s": {
            "finetune": walls.get("finetune"),
            "student": walls.get("student"),
            "student_per_epoch": walls.get("student_per_epoch_mean"),
            "membank": walls.get("membank"),  # k-fold banks included
            "kfold": walls.get("kfold"),
        },
        "train_device": meta.get("device"),
        "train_config": meta.get("config"),  # every `etstpm train` setting, to reproduce the run
        "inference_ms_per_image": round(1000.0 * pred["forward_s"] / n, 3),
        "inference_batch_size": batch_size,
        "metrics_wall_time_s": round(metrics_s, 3),
        "device": str(dev),
        "machine": machine_info(dev),
        "etstpm_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "operating_points": operating_points(pred["labels"], pred["scores"]),
        "verdict": None,
    }
    cal = meta.get("calibration")
    if cal and cal.get("threshold") and cal["threshold"].get("raw") is not None:
        result["verdict"] = verdict_quality(cal["threshold"]["raw"], pred["labels"], pred["defects"], pred["scores"])
        result["verdict"]["method"] = cal["threshold"].get("method")
        result["verdict"]["calibration"] = calibration_summary(cal)
        g = cal["threshold"].get("guarantee") or {}
        v = result["verdict"]
        v["against_calibration"] = frr_against_bound(v["false_rejects"], v["n_good"], g.get("frr_target"),
                                                     g.get("frr_bound"))

    # Per-image raw scores (and the verdict where calibrated), so another scorer of the same model - the daemon's
    # parity test, a line's own logs - can be compared image by image, not only through the AUROC.
    raw_thr = (cal or {}).get("threshold", {}).get("raw") if cal else None
    result["images"] = [
        {"path": p, "defect": d, "label": int(lab), "score": float(sc),
         "verdict": None if raw_thr is None else ("ng" if sc >= raw_thr else "ok")}
        for p, d, lab, sc in zip(pred["paths"], pred["defects"], pred["labels"], pred["scores"])
    ]

    if figures_dir is not None:
        from .figures import write_figures  # matplotlib only when figures are asked for

        result["figures"] = write_figures(figures_dir, model, dataset, pred, result, curves, dev,
                                          per_defect=num_figure_samples)
    result["eval_wall_time_s"] = round(time.perf_counter() - t_start, 3)
    return result


def _fmt(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def format_table(result: dict) -> str:
    """Plain-text table: overall and per defect (its images against all good ones); verdicts when calibrated."""
    verdict = result.get("verdict")
    w = max([14] + [len(k) + 2 for k in result["per_defect"]])
    head = f"{'defect':<{w}}{'images':>7}{'image AUROC':>13}{'pixel AUROC':>13}{'AU-PRO':>9}"
    if verdict:
        head += f"{'flagged ng':>12}"
    rows = [head, "-" * len(head)]
    n_good = result["n_images"] - result["n_defective"]

    def row(name: str, n: int, r: dict | None, flagged: str = "") -> str:
        if r is None:
            line = f"{name:<{w}}{n:>7}{'':>35}"
        else:
            line = (f"{name:<{w}}{n:>7}{_fmt(r['image_auroc']):>13}{_fmt(r['pixel_auroc']):>13}"
                    f"{_fmt(r['aupro']):>9}")
        return line + (f"{flagged:>12}" if verdict else "")

    rows.append(row("overall", result["n_images"], result,
                    f"{verdict['detected']}/{verdict['n_defective']}" if verdict else ""))
    rows.append(row("good", n_good, None, f"{verdict['false_rejects']}/{n_good}" if verdict else ""))
    for name, r in result["per_defect"].items():
        flagged = ""
        if verdict:
            v = verdict["per_defect"][name]
            flagged = f"{v['detected']}/{v['n']}"
        rows.append(row(name, r["n_defective"], r, flagged))
    tail = (f"per defect: its images against all {n_good} good ones; '-' = undefined (no masks)\n"
            f"method: {run_method(result)} | protocol: {result['protocol']} | "
            f"finetune: {result['finetune']} | epochs: {result['epochs']} | "
            f"image size: {result['image_size']} | seed: {result['seed']} | "
            f"inference {result['inference_ms_per_image']:.1f} ms/image on {result['device']} | "
            f"eval wall {result['eval_wall_time_s']:.0f} s")
    tail += "\n" + format_operating_points(result)
    if result["leaked"]:
        tail += "\nWARNING: the teacher saw test images (--paper-protocol): these numbers are leaked"
    if verdict:
        tail += (f"\nthreshold {verdict['threshold_raw']:.6g} ({verdict.get('method')}, from good images only): "
                 f"false-reject rate {verdict['false_reject_rate']:.3f} on test/good, "
                 f"detection rate {verdict['detection_rate']:.3f} on defects")
        ac = verdict.get("against_calibration") or {}
        if ac.get("frr_bound") is not None:
            tail += (f"\n  target {ac['frr_target']:.2%}, bound {ac['frr_bound']:.2%} at "
                     f"{verdict['calibration']['confidence']:.0%} confidence "
                     f"({verdict['calibration']['images']} calibration images); P(>= {verdict['false_rejects']} "
                     f"false rejects | rate = bound) = {ac['p_at_bound']:.3f}")
        if (verdict.get("calibration") or {}).get("warning"):
            tail += f"\n  calibration warning: {verdict['calibration']['warning']}"
    return "\n".join(rows + [tail])


def format_operating_points(result: dict) -> str:
    """One line per false-reject rate: detection there, or why the test set cannot resolve it."""
    ops = result.get("operating_points") or {}
    parts = []
    for key, p in (ops.get("at_frr") or {}).items():
        if p.get("resolvable"):
            parts.append(f"detection {p['detection_rate']:.3f} at {float(key):.1%} false rejects "
                         f"({p['false_rejects']}/{p['n_good']} good rejected)")
        else:
            parts.append(f"{float(key):.1%} false rejects not resolvable ({p['n_good']} good test images, needs "
                         f">= {p['goods_needed']})")
    z = ops.get("at_zero_false_rejects") or {}
    if z.get("detection_rate") is not None:
        parts.append(f"detection {z['detection_rate']:.3f} at 0 false rejects")
    return "operating points: " + "; ".join(parts)


def write_json(result: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def evaluate_command(a: argparse.Namespace) -> int:
    """`etstpm evaluate` (options: cli._add_evaluate)."""
    result = evaluate_run(a.run, a.data, a.category, image_size=a.image_size, device=a.device,
                          figures_dir=a.figures, batch_size=a.batch_size, show_progress=not a.no_progress,
                          fpr_limit=a.fpr_limit, num_figure_samples=a.figure_samples)
    write_json(result, a.json)
    # The run folder keeps the metrics of its own test set: `etstpm export` embeds RUN/metrics.json in model.json.
    if (data.same_folder(a.data, result["trained_on"]["data"] or "") and a.category == result["trained_on"]["category"]
            and result["image_size"] == result["trained_image_size"]):
        write_json(result, Path(a.run) / "metrics.json")
    print(format_table(result))
    print(f"results written to {a.json}" + (f", figures to {a.figures}" if a.figures else ""))
    return 0
