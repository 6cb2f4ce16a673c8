"""Datasets in MVTec AD layout.

<root>/<category>/train/good/*            normal training images
<root>/<category>/test/good/*             normal test images
<root>/<category>/test/<defect>/*         defective test images
<root>/<category>/ground_truth/<defect>/<stem>_mask.png   pixel masks (optional per defect folder)

Images may be .png/.jpg/.jpeg/.bmp/.tif(f), colour or grey, any size. Every image is squashed to
`image_size` x `image_size` (bilinear; masks nearest-neighbour and binarised), grey becomes RGB.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from . import IMAGENET_MEAN, IMAGENET_STD
from .errors import DatasetError  # defined there; importable from here too

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
Split = Literal["train", "test"]


class Sample(NamedTuple):
    path: str
    label: int  # 0 good, 1 defective
    defect: str  # "good" or the test/<defect> folder name
    mask_path: str | None  # None: good image, or defect folder without masks


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name; hidden files are ignored."""
    if not folder.is_dir():
        raise DatasetError(f"missing folder: {folder}")
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DatasetError(f"empty folder (no {'/'.join(IMAGE_EXTENSIONS)} images): {folder}")
    return files


def list_categories(root: str | Path) -> list[str]:
    """Sub-folders of `root` that look like categories (they hold train/good)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root is not a folder: {root}")
    return sorted(p.name for p in root.iterdir() if (p / "train" / "good").is_dir())


def same_folder(a: str | Path, b: str | Path) -> bool:
    """True if two spellings (relative, absolute, through a symlink) name the same folder."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def category_dir(root: str | Path, category: str) -> Path:
    d = Path(root) / category
    if not d.is_dir():
        found = list_categories(root) if Path(root).is_dir() else []
        raise DatasetError(f"category folder not found: {d} (categories under {root}: {found or 'none'})")
    return d


def train_samples(root: str | Path, category: str) -> list[Sample]:
    good = category_dir(root, category) / "train" / "good"
    if not good.is_dir():
        raise DatasetError(f"missing train/good folder: {good}")
    return [Sample(str(p), 0, "good", None) for p in list_images(good)]


def test_samples(root: str | Path, category: str) -> list[Sample]:
    cdir = category_dir(root, category)
    test = cdir / "test"
    if not test.is_dir():
        raise DatasetError(f"missing test folder: {test}")
    defect_dirs = sorted(p for p in test.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not defect_dirs:
        raise DatasetError(f"empty test folder (no test/good or test/<defect> sub-folders): {test}")
    samples: list[Sample] = []
    for d in defect_dirs:
        images = list_images(d)
        if d.name == "good":
            samples += [Sample(str(p), 0, "good", None) for p in images]
            continue
        gt = cdir / "ground_truth" / d.name
        for p in images:
            mask = gt / f"{p.stem}_mask.png"
            # A defect folder without ground_truth counts for image-level metrics only.
            samples.append(Sample(str(p), 1, d.name, str(mask) if mask.is_file() else None))
    return samples


def image_size_of(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header; DatasetError if it is not a readable image."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"unreadable image: {path} ({e})") from e


def _load_resized(path: str | Path, mode: str, image_size: int, resample: int, what: str) -> np.ndarray:
    """Decoded image converted to `mode` and resized to S x S; DatasetError naming the file if it cannot be read."""
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), resample)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"unreadable {what}: {path} ({e})") from e


def load_rgb(path: str | Path, image_size: int) -> np.ndarray:
    """Decoded image as uint8 [S, S, 3] RGB (grey/palette/alpha converted), bilinear resize."""
    return _load_resized(path, "RGB", image_size, Image.BILINEAR, "image").astype(np.uint8, copy=True)


def load_mask(path: str | Path, image_size: int) -> np.ndarray:
    """Binary mask as float32 [S, S] in {0, 1}; nearest-neighbour resize, any non-zero pixel is defective."""
    return (_load_resized(path, "L", image_size, Image.NEAREST, "mask") > 0).astype(np.float32)


_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W], ImageNet mean/std normalized (the same arithmetic as the ONNX graph)."""
    x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    return (x - _MEAN) / _STD


def validate(samples: Sequence[Sample]) -> None:
    """Check every image (and mask) header up front, so a bad file fails at start, not after an hour of training."""
    for s in samples:
        size = image_size_of(s.path)
        if s.mask_path is not None:
            try:
                with Image.open(s.mask_path) as m:
                    msize = m.size
            except (UnidentifiedImageError, OSError) as e:
                raise DatasetError(f"unreadable mask: {s.mask_path} ({e})") from e
            if msize != size:
                raise DatasetError(
                    f"mask size {msize[0]}x{msize[1]} differs from image size {size[0]}x{size[1]}: "
                    f"{s.mask_path} (image {s.path})"
                )


class AnomalyDataset(Dataset):
    """MVTec-layout dataset; `ds[i]` is a dict (image, mask, has_mask, label, defect, path).

    `samples` may be given to use a subset (e.g. train/good minus the calibration hold-out).
    `cache=True` keeps the resized uint8 images in memory (decode once; used for multi-epoch training).
    """

    def __init__(
        self,
        root: str | Path,
        category: str,
        split: Split = "train",
        image_size: int = 256,
        samples: Iterable[Sample] | None = None,
        cache: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {image_size}")
        self.root = Path(root)
        self.category = category
        self.split = split
        self.image_size = int(image_size)
        if samples is None:
            samples = train_samples(root, category) if split == "train" else test_samples(root, category)
        self.samples: list[Sample] = list(samples)
        if not self.samples:
            raise DatasetError(f"no images selected from {self.root / category} ({split})")
        validate(self.samples)
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def rgb(self, i: int) -> np.ndarray:
        """The resized uint8 RGB image [S, S, 3] (what the exported ONNX graph takes as input)."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = self.decode(self.samples[i].path)
        if self._cache is not None:
            self._cache[i] = img
        return img

    def decode(self, path: str) -> np.ndarray:
        """One image file as uint8 [S, S, 3]; a subclass may prepare images another way and keep the caching."""
        return load_rgb(path, self.image_size)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        image = to_tensor(self.rgb(i))
        if s.mask_path is not None:
            mask = torch.from_numpy(load_mask(s.mask_path, self.image_size))[None]
        else:
            mask = torch.zeros(1, self.image_size, self.image_size)
        has_mask = s.label == 0 or s.mask_path is not None
        return {"image": image, "mask": mask, "has_mask": has_mask, "label": s.label, "defect": s.defect,
                "path": s.path, "index": i}


def split_holdout(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Deterministically split train/good into (train, held-out) parts; the held-out part calibrates the threshold.

    fraction 0 holds nothing out. With fraction > 0 at least one image is held out and at least one remains.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"hold-out fraction must be in [0, 1), got {fraction}")
    samples = list(samples)
    if fraction == 0.0:
        return samples, []
    n_hold = max(1, int(round(fraction * len(samples))))
    if n_hold >= len(samples):
        raise DatasetError(f"too few train/good images ({len(samples)}) to hold out {fraction:.0%} for calibration")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(samples), generator=g).tolist()
    hold = sorted(order[:n_hold])
    keep = sorted(order[n_hold:])
    return [samples[i] for i in keep], [samples[i] for i in hold]
