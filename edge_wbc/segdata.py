"""Segmentation data: WBC / nucleus masks (wbc_seg, SigTuple) and WBC maps of BCCD smears.

Targets are float maps (N, H, W, C) in {0, 1}, with -1 where a channel is unknown (SigTuple masks
give the WBC region only, not the nucleus): the training loss and the metrics skip those pixels.
Each dataset's split is fixed (seeded permutation of the sorted file names) and decided before any
augmentation. Channels: ``("wbc", "nucleus")`` for the cell datasets, ``("wbc",)`` for smears.
"""

from __future__ import annotations

import csv
import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from .data import Dataset, Split, data_root
from .errors import DataError
from .preprocess import load_image, resize_image
from .spec import ModelSpec

SEG_DATASETS = ("wbcseg", "sigtuple", "seg", "bccd_smear")
CELL_LABELS = ("wbc", "nucleus")
SMEAR_LABELS = ("wbc",)
FRACTIONS = (0.7, 0.1, 0.2)


def _split_ids(ids: list[str], seed: int = 0) -> dict[str, list[str]]:
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test, n_val = round(len(ids) * FRACTIONS[2]), round(len(ids) * FRACTIONS[1])
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    return {s: [ids[i] for i in sorted(idx)] for s, idx in parts.items()}


def _mask_resize(m: np.ndarray, spec: ModelSpec) -> np.ndarray:
    return np.asarray(Image.fromarray(m).resize((spec.input_width, spec.input_height), Image.Resampling.NEAREST))


def load_wbcseg(root: Path, spec: ModelSpec, seed: int = 0) -> dict[str, Split]:
    d = root / "wbc_seg" / "dataset1"
    if not d.is_dir():
        raise DataError(f"{d}: wbc_seg not found under the data root")
    ids = [p.stem for p in d.glob("*.bmp") if (d / f"{p.stem}.png").is_file()]
    out = {}
    for s, names in _split_ids(ids, seed).items():
        x = np.empty((len(names), *spec.input_shape), np.uint8)
        y = np.empty((len(names), spec.input_height, spec.input_width, 2), np.float32)
        for i, n in enumerate(names):
            x[i] = resize_image(load_image(d / f"{n}.bmp"), spec)
            m = _mask_resize(np.asarray(Image.open(d / f"{n}.png").convert("L")), spec)
            y[i, ..., 0] = m >= 64  # cytoplasm (128) or nucleus (255)
            y[i, ..., 1] = m >= 192  # nucleus
        out[s] = Split(x, y, [str(d / f"{n}.bmp") for n in names])
    return out


def load_sigtuple(root: Path, spec: ModelSpec, seed: int = 0) -> dict[str, Split]:
    d = root / "sigtuple" / "Train_data"
    if not d.is_dir():
        raise DataError(f"{d}: sigtuple not found under the data root")
    ids = [p.stem for p in d.glob("train-*.jpg") if not p.stem.endswith("-mask") and (d / f"{p.stem}-mask.jpg").is_file()]
    out = {}
    for s, names in _split_ids(ids, seed).items():
        x = np.empty((len(names), *spec.input_shape), np.uint8)
        y = np.full((len(names), spec.input_height, spec.input_width, 2), -1.0, np.float32)
        for i, n in enumerate(names):
            x[i] = resize_image(load_image(d / f"{n}.jpg"), spec)
            m = np.asarray(Image.open(d / f"{n}-mask.jpg").convert("L"))
            y[i, ..., 0] = _mask_resize(((m >= 128) * 255).astype(np.uint8), spec) > 0  # JPEG mask: threshold at 128
        out[s] = Split(x, y, [str(d / f"{n}.jpg") for n in names])
    return out


def sigtuple_test_fields(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) of the official SigTuple test fields that have a mask (``Test_data/*-mask.jpg``)."""
    d = root / "sigtuple" / "Test_data"
    if not d.is_dir():
        raise DataError(f"{d}: sigtuple not found under the data root")
    pairs = [(p, p.with_name(f"{p.stem}-mask.jpg")) for p in sorted(d.glob("*.jpg")) if not p.stem.endswith("-mask")]
    return [(i, m) for i, m in pairs if m.is_file()]


def sigtuple_min_wbc_area(root: Path, seed: int = 0) -> int:
    """Pixels of the smallest WBC mask in the SigTuple training split, at the patches' native 128 px:
    the floor below which an annotated component of a test field is not taken for a WBC."""
    tr = load_sigtuple(root, ModelSpec("segmentation", 128, 128, CELL_LABELS), seed)["train"]
    return int((tr.labels[..., 0] > 0.5).sum(axis=(1, 2)).min())


def voc_boxes(xml_path: Path, name: str = "WBC") -> list[tuple[int, int, int, int]]:
    root = ET.parse(xml_path).getroot()
    boxes = []
    for obj in root.iter("object"):
        if obj.findtext("name", "").strip().upper() != name.upper():
            continue
        b = obj.find("bndbox")
        boxes.append(tuple(int(float(b.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")))
    return boxes


def bccd_split_names(bccd: Path) -> dict[str, list[str]]:
    sets = bccd / "BCCD" / "ImageSets" / "Main"
    names = {s: (sets / f"{s}.txt").read_text().split() for s in ("train", "val", "test") if (sets / f"{s}.txt").is_file()}
    if set(names) != {"train", "val", "test"}:
        raise DataError(f"{sets}: expected train.txt, val.txt and test.txt")
    return names


def load_bccd_smear(root: Path, spec: ModelSpec) -> dict[str, Split]:
    """BCCD smears resized to the spec, target = filled WBC boxes (the dataset's own split)."""
    bccd = root / "bccd"
    if not (bccd / "BCCD").is_dir():
        raise DataError(f"{bccd}: BCCD not found under the data root")
    out = {}
    for s, names in bccd_split_names(bccd).items():
        x = np.empty((len(names), *spec.input_shape), np.uint8)
        y = np.zeros((len(names), spec.input_height, spec.input_width, 1), np.float32)
        for i, n in enumerate(names):
            img = load_image(bccd / "BCCD" / "JPEGImages" / f"{n}.jpg")
            sx, sy = spec.input_width / img.width, spec.input_height / img.height
            x[i] = resize_image(img, spec)
            for x0, y0, x1, y1 in voc_boxes(bccd / "BCCD" / "Annotations" / f"{n}.xml"):
                y[i, int(y0 * sy) : int(np.ceil(y1 * sy)), int(x0 * sx) : int(np.ceil(x1 * sx)), 0] = 1.0
        out[s] = Split(x, y, [str(bccd / "BCCD" / "JPEGImages" / f"{n}.jpg") for n in names])
    return out


def load_seg_dataset(name: str, spec: ModelSpec, data=None, seed: int = 0) -> Dataset:
    root = data_root(data)
    if name == "wbcseg":
        splits, labels = load_wbcseg(root, spec, seed), CELL_LABELS
    elif name == "sigtuple":
        splits, labels = load_sigtuple(root, spec, seed), CELL_LABELS
    elif name == "seg":  # both cell datasets, each split on its own, then concatenated
        a, b = load_wbcseg(root, spec, seed), load_sigtuple(root, spec, seed)
        splits = {s: dataclasses.replace(a[s].concat(b[s]), groups=["wbcseg"] * len(a[s]) + ["sigtuple"] * len(b[s])) for s in a}
        labels = CELL_LABELS
    elif name == "bccd_smear":
        splits, labels = load_bccd_smear(root, spec), SMEAR_LABELS
    else:
        raise DataError(f"unknown segmentation dataset {name!r}: valid choices are {', '.join(SEG_DATASETS)}")
    return Dataset(name, labels, splits, source=str(root))


def label_grid(masks: np.ndarray, min_masks: int = 8) -> int:
    """The annotation grid of binary masks (N, H, W) in {0, 1} (-1: unknown): the largest k in
    2..min(H, W) // 8 such that every mask is constant on each aligned k x k block, or 1 for
    pixel-level masks. Fewer than ``min_masks`` informative masks (known everywhere, neither empty
    nor full) say nothing: 1.

    SigTuple's masks are drawn on a 32 x 32 grid and stored at 128 px (k = 4): scoring a 128 px
    prediction against them pixel by pixel charges the model for boundary detail the labels cannot
    hold. ``dice_iou(..., grid=k)`` scores at the labels' own resolution instead.
    """
    m = np.asarray(masks)
    if m.ndim != 3 or not len(m):
        raise ValueError(f"masks must be a non-empty (N, H, W) array, got shape {m.shape}")
    m = m[(m >= 0).all(axis=(1, 2))] > 0.5  # masks with unknown pixels say nothing about the grid
    m = m[m.any(axis=(1, 2)) & ~m.all(axis=(1, 2))]  # nor do empty or full ones: they fit any grid
    if len(m) < min_masks:
        return 1
    h, w = m.shape[1:]
    for k in range(min(h, w) // 8, 1, -1):
        if h % k or w % k:
            continue
        b = m.reshape(len(m), h // k, k, w // k, k)
        if (b.all(axis=(2, 4)) | ~b.any(axis=(2, 4))).all():
            return k
    return 1


def block_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean of each aligned k x k block of maps (N, H, W): (N, H/k, W/k)."""
    n, h, w = x.shape
    if h % k or w % k:
        raise ValueError(f"grid {k} does not divide the {h}x{w} maps: valid grids divide both sides")
    return x.reshape(n, h // k, k, w // k, k).mean(axis=(2, 4))


def dice_iou(pred: np.ndarray, target: np.ndarray, grid: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and IoU of binary maps (N, H, W); pixels where target < 0 are ignored.

    ``grid`` > 1 scores at the labels' resolution (see ``label_grid``): the prediction is averaged
    over each aligned grid x grid block and thresholded at 0.5, a block counts where all of its
    target pixels are known, and each block weighs one. An image whose prediction and target are
    both empty scores 1.
    """
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if grid > 1:
        known = block_mean((target >= 0).astype(float), grid) == 1.0
        pred, target = block_mean(pred, grid), np.where(known, block_mean(np.clip(target, 0, 1), grid), -1.0)
    valid = target >= 0
    p = (pred > 0.5) & valid
    t = (target > 0.5) & valid
    inter = (p & t).sum(axis=(1, 2)).astype(float)
    ps, ts = p.sum(axis=(1, 2)).astype(float), t.sum(axis=(1, 2)).astype(float)
    union = ps + ts - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(ps + ts > 0, 2 * inter / (ps + ts), 1.0)
        iou = np.where(union > 0, inter / union, 1.0)
    return dice, iou
