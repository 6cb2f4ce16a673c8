"""ET fine-tuning of the teacher (the paper's enhancement), before the student is distilled.

The paper replaces ResNet-18's ImageNet classifier with one over the MVTec categories and trains 1 epoch with only
the new head trainable, then 2 epochs with everything unfrozen (cross-entropy). Here:

- the head sits on layer3 (global average pool -> linear): the pyramid ends at layer3 and the shared weights file
  has no layer4, so a head on layer4 would start from random layer4 weights and its gradients would reach the
  pyramid only through that random block;
- BatchNorm stays in eval mode throughout (frozen statistics; its affine parameters still train in the unfrozen
  phase), which is correct for both the original and the BN-folded weight forms;
- tasks: `classes` = which category an image shows (needs >= 2 categories); `rotation` = self-supervised
  0/90/180/270 degree rotation prediction on the normal images (for a single category, where nothing is to be
  classified); `none` = plain STPM (the ImageNet teacher as is).
- protocols: leakage-free (default) uses only train/good images (minus the calibration hold-out of the target
  category) plus labelled images from a folder the user names, which may not overlap the evaluation test folder;
  paper protocol adds the test images (good and defective) of every fine-tuning category, as the paper did with
  MVTec AD, and every result is marked "paper (leaked)".
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import data
from .backbone import CHANNELS, FeatureExtractor, set_batchnorm_eval

log = logging.getLogger(__name__)

PROTOCOL_LEAKAGE_FREE = "leakage-free"
PROTOCOL_PAPER = "paper (leaked)"


@dataclass
class FinetuneConfig:
    mode: str = "auto"  # auto | classes | rotation | none
    head_epochs: int = 1
    full_epochs: int = 2
    batch_size: int = 32
    lr_head: float = 0.1
    lr_full: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    extra_roots: list[str] = field(default_factory=list)  # more MVTec-layout roots whose categories join `classes`
    labelled_dir: str | None = None  # <dir>/<category>/**/image: extra labelled images (leakage-free protocol)
    paper_protocol: bool = False


class TeacherClassifier(nn.Module):
    """Feature pyramid + a classification head on layer3 (global average pool -> linear)."""

    def __init__(self, features: FeatureExtractor, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(CHANNELS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f3 = self.features(x)[-1]
        return self.head(torch.flatten(F.adaptive_avg_pool2d(f3, 1), 1))


class ImageListDataset(Dataset):
    """(image, class index) pairs from image paths; decoded once and cached (3 epochs read every image 3 times)."""

    def __init__(self, items: Sequence[tuple[str, int]], image_size: int) -> None:
        self.items = list(items)
        self.image_size = image_size
        data.validate([data.Sample(p, 0, "good", None) for p, _ in self.items])
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def rgb(self, i: int) -> np.ndarray:
        if i not in self._cache:
            self._cache[i] = data.load_rgb(self.items[i][0], self.image_size)
        return self._cache[i]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return data.to_tensor(self.rgb(i)), self.items[i][1]


class RotationDataset(Dataset):
    """Each normal image once per epoch, rotated by a random multiple of 90 degrees; the target is that multiple.

    One random rotation per image per epoch (not all four) keeps a fine-tuning epoch as long as one pass over the
    images, the same cost as for the `classes` task. The draw uses torch's global RNG, seeded by `--seed`.
    """

    def __init__(self, samples: Sequence[data.Sample], image_size: int) -> None:
        self.base = ImageListDataset([(s.path, 0) for s in samples], image_size)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        k = int(torch.randint(0, 4, ()))
        x = data.to_tensor(self.base.rgb(i))
        return torch.rot90(x, k, dims=(1, 2)).contiguous(), k


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _labelled_items(labelled_dir: str, classes: list[str], eval_test_dir: Path) -> list[tuple[str, int]]:
    root = Path(labelled_dir)
    if not root.is_dir():
        raise data.DatasetError(f"--finetune-labelled folder not found: {root}")
    if _inside(root, eval_test_dir) or _inside(eval_test_dir, root):
        raise data.DatasetError(
            f"--finetune-labelled folder {root} overlaps the evaluation test folder {eval_test_dir}: that would leak "
            "test images into the teacher (use --paper-protocol to do so knowingly)"
        )
    items: list[tuple[str, int]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in classes:
            raise data.DatasetError(
                f"--finetune-labelled sub-folder {sub} is not one of the fine-tuning categories {classes}"
            )
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in data.IMAGE_EXTENSIONS)
        if not files:
            raise data.DatasetError(f"empty folder (no images): {sub}")
        items += [(str(p), classes.index(sub.name)) for p in files]
    if not items:
        raise data.DatasetError(f"--finetune-labelled folder has no <category>/ sub-folders with images: {root}")
    return items


def resolve_mode(cfg: FinetuneConfig, data_root: str, category: str) -> tuple[str, list[tuple[str, str]]]:
    """The effective task and, for `classes`, the (root, category) pairs that become the classes."""
    pairs: list[tuple[str, str]] = [(data_root, category)]
    for root in [data_root, *cfg.extra_roots]:
        for c in data.list_categories(root):
            if c not in [p[1] for p in pairs]:
                pairs.append((root, c))
    mode = cfg.mode
    if mode == "auto":
        mode = "classes" if len(pairs) >= 2 else "rotation"
    if mode == "classes" and len(pairs) < 2:
        raise data.DatasetError(
            f"--finetune classes needs at least 2 categories; found only {category!r} under {data_root} "
            "(add --finetune-roots ROOT ..., or use --finetune rotation)"
        )
    if mode not in ("classes", "rotation", "none"):
        raise ValueError(f"unknown fine-tuning mode {cfg.mode!r} (auto, classes, rotation, none)")
    return mode, pairs


def build_task(cfg: FinetuneConfig, mode: str, pairs: list[tuple[str, str]],
               target_train: Sequence[data.Sample], image_size: int) -> tuple[Dataset, list[str], dict]:
    """The fine-tuning dataset, class names and a description of what went into it."""
    data_root, category = pairs[0]
    if mode == "rotation":
        items: list[data.Sample] = list(target_train)
        desc = {"task": "rotation", "classes": ["0", "90", "180", "270"], "images": len(items)}
        if cfg.paper_protocol:
            tests = data.test_samples(data_root, category)
            items += tests
            desc["test_images_used"] = len(tests)
        return RotationDataset(items, image_size), desc["classes"], desc

    classes = [c for _, c in pairs]
    per_class: dict[str, int] = {}
    items2: list[tuple[str, int]] = []
    for idx, (root, cat) in enumerate(pairs):
        samples = list(target_train) if idx == 0 else data.train_samples(root, cat)
        if cfg.paper_protocol:
            samples += data.test_samples(root, cat)
        items2 += [(s.path, idx) for s in samples]
        per_class[cat] = len(samples)
    desc = {"task": "classes", "classes": classes, "roots": sorted({r for r, _ in pairs}),
            "images_per_class": per_class}
    if cfg.labelled_dir:
        extra = _labelled_items(cfg.labelled_dir, classes, Path(data_root) / category / "test")
        items2 += extra
        desc["labelled_dir"] = cfg.labelled_dir
        desc["labelled_images"] = len(extra)
    return ImageListDataset(items2, image_size), classes, desc


def _run_epochs(model: TeacherClassifier, loader: DataLoader, optimizer: torch.optim.Optimizer, epochs: int,
                device: torch.device, phase: str, history: list[dict], show_progress: bool) -> None:
    for epoch in range(epochs):
        model.train()
        set_batchnorm_eval(model)  # frozen statistics, see module docstring
        t0 = time.perf_counter()
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(loader, desc=f"teacher {phase} {epoch + 1}/{epochs}", leave=False, disable=not show_progress,
                   dynamic_ncols=True)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        rec = {"phase": phase, "epoch": epoch + 1, "loss": loss_sum / total, "accuracy": correct / total,
               "wall_s": round(time.perf_counter() - t0, 3)}
        history.append(rec)
        log.info("teacher fine-tuning %s epoch %d/%d: loss %.4f acc %.3f (%.1f s)", phase, epoch + 1, epochs,
                 rec["loss"], rec["accuracy"], rec["wall_s"])
        tqdm.write(f"teacher {phase} epoch {epoch + 1}/{epochs}: loss {rec['loss']:.4f} "
                   f"accuracy {rec['accuracy']:.3f} ({rec['wall_s']:.1f} s)")


def finetune(features: FeatureExtractor, dataset: Dataset, num_classes: int, cfg: FinetuneConfig,
             device: torch.device, seed: int, show_progress: bool = True) -> list[dict]:
    """Fine-tune `features` in place: head-only epochs, then all-unfrozen epochs. Returns per-epoch history."""
    model = TeacherClassifier(features, num_classes).to(device)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=g, num_workers=0)
    history: list[dict] = []

    for p in model.features.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD(model.head.parameters(), lr=cfg.lr_head, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    _run_epochs(model, loader, opt, cfg.head_epochs, device, "head", history, show_progress)

    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr_full, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    _run_epochs(model, loader, opt, cfg.full_epochs, device, "all", history, show_progress)

    model.eval()
    for p in features.parameters():
        p.requires_grad_(False)
    return history

