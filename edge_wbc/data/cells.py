"""Labelled WBC crops from several sources, in one five-class vocabulary.

A *source* is one microscope / stain / camera: ``pbc128`` (CellaVision DM96, Barcelona), ``bccd``
(BCCD smear crops) and ``wbcseg`` (Zheng et al.'s dataset1, another scanner and a rapid stain), or
any labelled folder tree (``PATH/{train,val,test}/<class>/`` or ``PATH/<class>/``). Each is split on
its own, before any augmentation: PBC by its official split, BCCD by smear (the dataset's held-out
smears are test), wbc_seg and folder trees stratified and seeded (70/10/20).

Class names map onto :data:`VOCAB` case-insensitively, plural or singular. PBC's classes outside
the vocabulary (``ig``, ``erythroblast``, ``platelet``) are not WBC subtypes the field model
reports: they are left out and counted in :attr:`CellItems.dropped`. Any other unknown class is an
error that lists the vocabulary and says how to map it (``--label-map old=new``).

This module lists files, labels, sources and splits; it decodes nothing (the field trainer crops
each image with the WBC finder first).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .catalog import CATALOG
from .loaders import bccd_parts, iter_image_files, stratified_split
from .roots import ENV_VAR, data_root

#: The five WBC classes of the field model, in label order.
VOCAB = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
#: PBC classes that are not WBC subtypes of the vocabulary: left out of the field model's data.
OUTSIDE_VOCAB = ("ig", "erythroblast", "platelet")
#: The named cell sources (any other value must be a folder tree).
CELL_SOURCES = ("pbc128", "bccd", "wbcseg")
#: wbc_seg's dataset1_labels.csv codes.
WBCSEG_CODES = {1: "neutrophil", 2: "lymphocyte", 3: "monocyte", 4: "eosinophil", 5: "basophil"}


@dataclass
class CellItems:
    """Files of labelled cells: parallel lists, one entry per image."""

    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # index into VOCAB
    sources: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)  # train | val | test
    groups: list[str] = field(default_factory=list)  # smear / image id (leakage checks)
    dropped: dict[str, int] = field(default_factory=dict)  # "<source>/<class>" -> images left out

    def __len__(self) -> int:
        return len(self.paths)

    def extend(self, other: CellItems) -> None:
        for k in ("paths", "labels", "sources", "splits", "groups"):
            getattr(self, k).extend(getattr(other, k))
        self.dropped.update(other.dropped)

    def select(self, mask) -> CellItems:
        idx = np.flatnonzero(np.asarray(mask, bool))
        out = CellItems(dropped=dict(self.dropped))
        for k in ("paths", "labels", "sources", "splits", "groups"):
            v = getattr(self, k)
            setattr(out, k, [v[i] for i in idx])
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for s, sp, y in zip(self.sources, self.splits, self.labels):
            d = out.setdefault(f"{s}/{sp}", {})
            d[VOCAB[y]] = d.get(VOCAB[y], 0) + 1
        return out


def parse_label_map(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["segmented=neutrophil", "lymph=lymphocyte"]`` -> {folder name (lower case): vocabulary class}."""
    out = {}
    for it in items or ():
        if "=" not in it:
            raise DataError(f"invalid label map {it!r}: use OLD=NEW, e.g. segmented=neutrophil")
        old, new = (s.strip() for s in it.split("=", 1))
        if new.lower() not in VOCAB:
            raise DataError(f"invalid label map {it!r}: {new!r} is not a class; valid classes are {', '.join(VOCAB)}")
        out[old.lower()] = new.lower()
    return out


def vocab_label(name: str, source: str, label_map: dict[str, str] | None = None) -> str | None:
    """The vocabulary class of a folder / class name, None for PBC's non-WBC classes; else a DataError."""
    key = name.strip().lower()
    if label_map and key in label_map:
        return label_map[key]
    for v in VOCAB:
        if key in (v, v + "s"):
            return v
    if key in OUTSIDE_VOCAB:
        return None
    raise DataError(
        f"{source}: class {name!r} is not in the WBC vocabulary ({', '.join(VOCAB)}); map it with "
        f"--label-map {name}=<class> (classes outside the vocabulary that should be left out: "
        f"{', '.join(OUTSIDE_VOCAB)})"
    )


def _from_tree(root: Path, source: str, label_map, seed: int) -> CellItems:
    """A folder tree: ``root/{train,val,test}/<class>/`` as split, or ``root/<class>/`` split 70/10/20."""
    items = CellItems()
    splits = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    layout = [(s, root / s) for s in splits] if splits else [(None, root)]
    files, ys, sp_of = [], [], []
    for split, base in layout:
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            lab = vocab_label(d.name, source, label_map)
            fs = list(iter_image_files(d))
            if lab is None:
                items.dropped[f"{source}/{d.name}"] = items.dropped.get(f"{source}/{d.name}", 0) + len(fs)
                continue
            for f in fs:
                files.append(f)
                ys.append(VOCAB.index(lab))
                sp_of.append(split)
    if not files:
        raise DataError(f"{root}: no labelled images found (expected <class>/ or train|val|test/<class>/ folders)")
    if not splits:
        parts = stratified_split(np.array(ys), (0.7, 0.1, 0.2), seed)
        sp_of = [""] * len(files)
        for name, idx in parts.items():
            for i in idx:
                sp_of[i] = name
    items.paths, items.labels = files, ys
    items.sources, items.splits, items.groups = [source] * len(files), sp_of, [f.stem for f in files]
    return items


def _bccd(root: Path, seed: int) -> CellItems:
    crops = root / "BCCD_cropped"
    if not crops.is_dir():
        raise DataError(f"{crops}: BCCD crops not found under the data root (set --data or {ENV_VAR})")
    files, ys, groups = [], [], []
    for d in sorted(p for p in crops.iterdir() if p.is_dir()):
        lab = vocab_label(d.name, "bccd")
        for f in iter_image_files(d):
            m = re.match(r"(BloodImage_\d+)", f.name)
            files.append(f)
            ys.append(VOCAB.index(lab))
            groups.append(m.group(1) if m else f.stem)
    parts = bccd_parts(np.array(ys), groups, root, seed)
    sp = [""] * len(files)
    for name, idx in parts.items():
        for i in idx:
            sp[i] = name
    return CellItems(files, ys, ["bccd"] * len(files), sp, groups)


def _wbcseg(root: Path, seed: int) -> CellItems:
    csv_path = root / "dataset1_labels.csv"
    img_dir = root / "dataset1"
    if not csv_path.is_file() or not img_dir.is_dir():
        raise DataError(f"{root}: wbc_seg dataset1/ and dataset1_labels.csv not found (set --data or {ENV_VAR})")
    files, ys = [], []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) < 2 or not row[0].strip().isdigit():
                continue
            i, code = int(row[0]), int(row[1])
            if code not in WBCSEG_CODES:
                raise DataError(f"{csv_path}: class code {code} of image {i} is not one of {sorted(WBCSEG_CODES)}")
            f = img_dir / f"{i:03d}.bmp"
            if f.is_file():
                files.append(f)
                ys.append(VOCAB.index(WBCSEG_CODES[code]))
    parts = stratified_split(np.array(ys), (0.7, 0.1, 0.2), seed)
    sp = [""] * len(files)
    for name, idx in parts.items():
        for i in idx:
            sp[i] = name
    return CellItems(files, ys, ["wbcseg"] * len(files), sp, [f.stem for f in files])


def source_license(name: str) -> str:
    return CATALOG[name].license if name in CATALOG else "unknown: a folder tree of the user's"


def list_cells(
    sources: list[str] | tuple[str, ...], data=None, seed: int = 0, label_map: dict[str, str] | None = None
) -> CellItems:
    """Every labelled cell of ``sources`` (named sources or folder paths), with its source and split."""
    if not sources:
        raise DataError(f"no cell sources given: valid choices are {', '.join(CELL_SOURCES)} or folder paths")
    out = CellItems()
    for s in sources:
        if s in ("pbc128",):
            root = data_root(data) / CATALOG["pbc128"].path
            if not root.is_dir():
                raise DataError(f"{root}: pbc128 not found under the data root (set --data or {ENV_VAR})")
            items = _from_tree(root, "pbc128", label_map, seed)
        elif s == "bccd":
            items = _bccd(data_root(data) / "bccd", seed)
        elif s == "wbcseg":
            items = _wbcseg(data_root(data) / "wbc_seg", seed)
        else:
            p = Path(s).expanduser()
            if not p.is_dir():
                raise DataError(
                    f"unknown cell source {s!r}: valid choices are {', '.join(CELL_SOURCES)} or a folder path"
                )
            items = _from_tree(p, p.name, label_map, seed)
        out.extend(items)
    return out
