"""Segmentation data: WBC / nucleus masks (wbcseg, SigTuple) and WBC maps of BCCD smears.

Targets are float maps (N, H, W, C) in {0, 1}, with -1 where a channel is unknown (SigTuple masks
give the WBC region only, not the nucleus): the training loss and the metrics skip those pixels.
Each dataset's split is fixed (seeded permutation of the sorted file names) and decided before any
augmentation. Channels: ``("wbc", "nucleus")`` for the cell datasets, ``("wbc",)`` for smears.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..preprocess import load_image, resize_image
from ..spec import ModelSpec
from .catalog import CATALOG, SEG_DATASETS
from .containers import Dataset, Split
from .roots import data_root

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
    d = root / CATALOG["wbcseg"].path
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
    d = root / CATALOG["sigtuple"].path
    if not d.is_dir():
        raise DataError(f"{d}: sigtuple not found under the data root")
    ids = [
        p.stem for p in d.glob("train-*.jpg") if not p.stem.endswith("-mask") and (d / f"{p.stem}-mask.jpg").is_file()
    ]
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
    names = {
        s: (sets / f"{s}.txt").read_text().split() for s in ("train", "val", "test") if (sets / f"{s}.txt").is_file()
    }
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
        splits = {
            s: dataclasses.replace(a[s].concat(b[s]), groups=["wbcseg"] * len(a[s]) + ["sigtuple"] * len(b[s]))
            for s in a
        }
        labels = CELL_LABELS
    elif name == "bccd_smear":
        splits, labels = load_bccd_smear(root, spec), SMEAR_LABELS
    else:
        raise DataError(f"unknown segmentation dataset {name!r}: valid choices are {', '.join(SEG_DATASETS)}")
    return Dataset(name, labels, splits, source=str(root))
