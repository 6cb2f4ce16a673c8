"""Figures of an evaluation: anomaly maps like the paper's Fig. 3, and ROC curves (matplotlib, Agg, PNG)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from .run import run_method  # noqa: E402

GT_COLOUR = "#39ff14"
PRED_COLOUR = "#ff2020"


def pick_samples(defects: list[str], per_defect: int = 2) -> list[int]:
    """Deterministic sample: `per_defect` images spread evenly through each folder (good included), folder order."""
    picked: list[int] = []
    names = sorted(set(defects), key=lambda d: (d != "good", d))
    for name in names:
        idx = [i for i, d in enumerate(defects) if d == name]
        k = min(per_defect, len(idx))
        if k:
            picked += [idx[int(j)] for j in np.linspace(0, len(idx) - 1, k).round().astype(int)]
    return picked


def _display_image(x: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x.cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


@torch.no_grad()
def anomaly_map_figure(path: str | Path, model, dataset, indices: list[int], scores: np.ndarray,
                       device: torch.device, threshold: float | None = None,
                       final_range: tuple[float, float] | None = None) -> None:
    """One row per image: image | the model's intermediate maps | final map | image with ground-truth outline.

    The intermediate maps are the model's `named_maps` (STPM: one per pyramid level; memory bank: the unsmoothed
    distance). Each column shares one colour scale across rows (so rows compare); the final map uses `final_range`
    (e.g. low/high percentiles of all test maps) and has a colour bar. With a calibrated threshold the predicted
    region (map >= threshold) is outlined too.
    """
    items = [dataset[i] for i in indices]
    x = torch.stack([it["image"] for it in items]).to(device)
    named = [(t, m[:, 0].cpu().numpy()) for t, m in model.named_maps(x)]
    inner, (final_title, final) = named[:-1], named[-1]
    level_range = [(float(np.percentile(m, 0.5)), float(np.percentile(m, 99.5))) for _, m in inner]
    if final_range is None:
        final_range = (float(np.percentile(final, 0.5)), float(np.percentile(final, 99.5)))
    titles = ["image", *[t for t, _ in inner], final_title, "ground truth"]
    cols, last = len(titles), len(titles) - 1
    rows = len(items)
    fig, axes = plt.subplots(rows, cols, figsize=(2.33 * cols, 2.3 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for r, it in enumerate(items):
        img = _display_image(it["image"])
        mask = it["mask"][0].numpy() > 0.5
        panels = [None, *[m[r] for _, m in inner], final[r], None]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.imshow(img)
                ax.set_ylabel(f"{it['defect']}\nscore {scores[indices[r]]:.3g}", fontsize=9)
            elif c < last:
                lo, hi = level_range[c - 1] if c < last - 1 else final_range
                im = ax.imshow(panels[c], cmap="jet", vmin=lo, vmax=max(hi, lo + 1e-12))
                if c == last - 1:
                    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
                    cb.ax.tick_params(labelsize=7)
            else:
                ax.imshow(img)
                if mask.any():
                    ax.contour(mask, levels=[0.5], colors=GT_COLOUR, linewidths=1.6)
                elif it["label"] == 1 and not it["has_mask"]:
                    ax.text(0.5, 0.05, "no mask", color="w", ha="center", transform=ax.transAxes, fontsize=8)
                if threshold is not None and (final[r] >= threshold).any():
                    ax.contour(final[r] >= threshold, levels=[0.5], colors=PRED_COLOUR, linewidths=1.0)
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
    note = "green: ground truth"
    if threshold is not None:
        note += f"; red: map >= calibrated threshold {threshold:.3g}"
    fig.suptitle(f"{Path(dataset.root).name}/{dataset.category} - {note}", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def roc_figure(path: str | Path, curves: dict, result: dict) -> None:
    """Image-level and pixel-level ROC curves, overall and per defect type, AUROC in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for ax, kind, key in ((axes[0], "image", "image_auroc"), (axes[1], "pixel", "pixel_auroc")):
        for name, c in curves.items():
            if c.get(kind) is None:
                continue
            fpr, tpr = c[kind]
            r = result if name == "overall" else result["per_defect"][name]
            style = {"color": "k", "linewidth": 2.2} if name == "overall" else {"linewidth": 1.2}
            ax.plot(fpr, tpr, label=f"{name} ({r[key]:.3f})", **style)
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"{kind}-level ROC")
        ax.legend(loc="lower right", fontsize=9, title="AUROC")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result['category']} - {run_method(result)}, {result['finetune']} teacher, "
                 f"{result['epochs']} epochs, "
                 f"{result['protocol']}", fontsize=11)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_figures(figures_dir: str | Path, model, dataset, pred: dict, result: dict, curves: dict,
                  device: torch.device, per_defect: int = 2) -> dict:
    """Writes maps.png and roc.png into figures_dir; returns {name: path}."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    verdict = result.get("verdict")
    threshold = verdict["threshold_raw"] if verdict else None
    indices = pick_samples(pred["defects"], per_defect)
    # One scale for the final map across rows: percentiles over (a sample of) all test maps, widened to include
    # the calibrated threshold when there is one.
    some = pred["maps"][:: max(1, len(pred["maps"]) // 64)]
    lo, hi = float(np.percentile(some, 1)), float(np.percentile(some, 99.9))
    if threshold is not None:
        hi = max(hi, threshold * 1.05)
    paths = {"maps": str(out / "maps.png"), "roc": str(out / "roc.png")}
    anomaly_map_figure(paths["maps"], model, dataset, indices, pred["scores"], device, threshold, (lo, hi))
    roc_figure(paths["roc"], curves, result)
    return paths
