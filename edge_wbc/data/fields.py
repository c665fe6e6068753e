"""Smear fields with their WBC boxes, from every field source: the data of the multi-source WBC detector.

Three sources, each with its own split:

- ``bccd``: BCCD smears (640x480) with VOC boxes; BCCD's own train/val/test.
- ``smartphone_pig``: smartphone-through-eyepiece fields (416x416) with YOLO boxes; its own
  train/valid/test (``valid`` is val here).
- ``sigtuple``: the 164 128 px training patches (one WBC in the centre, boxes from the mask), seeded
  90/10 train/val; test: the 13 official test fields that have a mask (boxes: the mask components at
  least as large as the smallest training WBC). SigTuple has no redistribution rights: a detector
  trained on it is for evaluation only, never shipped.

A detection dataset is named ``fields:SOURCE[,SOURCE...]``; plain ``fields`` is the shippable default
(:data:`SHIPPABLE_SOURCES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .catalog import CATALOG, FIELDS_PREFIX, dataset_license

Box = tuple[int, int, int, int]

#: the field sources (their licences: the catalog's SOURCE_ENTRIES)
FIELD_SOURCES = ("bccd", "sigtuple", "smartphone_pig")
#: the sources a shipped detector may be trained on (SigTuple: evaluation only)
SHIPPABLE_SOURCES = ("bccd", "smartphone_pig")
#: sources whose training images are WBC-centred patches, not whole fields (padded by reflection)
PATCH_SOURCES = ("sigtuple",)
PREFIX = FIELDS_PREFIX[:-1]  # "fields"


@dataclass(frozen=True)
class Field:
    path: Path
    boxes: tuple[Box, ...]  # WBCs, [x0, y0, x1, y1) in the image's pixels
    source: str
    split: str  # train | val | test


def is_fields_dataset(name: str | None) -> bool:
    return bool(name) and (name == PREFIX or str(name).startswith(PREFIX + ":"))


def parse_fields_dataset(name: str) -> tuple[str, ...]:
    """``fields`` -> the shippable sources; ``fields:a,b`` -> (a, b), each checked."""
    if name == PREFIX:
        return SHIPPABLE_SOURCES
    if not is_fields_dataset(name):
        raise DataError(f"{name!r} is not a field dataset: use fields or fields:{','.join(FIELD_SOURCES)}")
    sources = tuple(s.strip() for s in name.split(":", 1)[1].split(",") if s.strip())
    bad = [s for s in sources if s not in FIELD_SOURCES]
    if bad or not sources:
        raise DataError(f"unknown field source {bad[0] if bad else ''!r} in {name!r}: valid choices are "
                        f"{', '.join(FIELD_SOURCES)}")
    if len(set(sources)) != len(sources):
        raise DataError(f"{name!r} names a source twice")
    return sources


def fields_license(name: str) -> str:
    return dataset_license(FIELDS_PREFIX + ",".join(parse_fields_dataset(name)))


def _bccd(root: Path) -> list[Field]:
    from .segdata import bccd_split_names, voc_boxes

    d = root / "bccd"
    if not (d / "BCCD").is_dir():
        raise DataError(f"{d}: BCCD not found under the data root")
    return [Field(d / "BCCD" / "JPEGImages" / f"{n}.jpg", tuple(voc_boxes(d / "BCCD" / "Annotations" / f"{n}.xml")),
                  "bccd", s) for s, names in bccd_split_names(d).items() for n in names]


def yolo_boxes(label_file: Path, width: int, height: int) -> tuple[Box, ...]:
    """YOLO ``class cx cy w h`` lines (normalised) -> pixel boxes."""
    boxes = []
    for line in label_file.read_text().splitlines() if label_file.is_file() else []:
        v = line.split()
        if len(v) == 5:
            cx, cy, bw, bh = (float(x) for x in v[1:])
            boxes.append((round((cx - bw / 2) * width), round((cy - bh / 2) * height),
                          round((cx + bw / 2) * width), round((cy + bh / 2) * height)))
    return tuple(boxes)


def _pig(root: Path) -> list[Field]:
    d = root / "smartphone_pig"
    if not d.is_dir():
        raise DataError(f"{d}: smartphone_pig not found under the data root")
    out = []
    for folder, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        for img in sorted((d / folder / "images").glob("*.jpg")):
            w, h = Image.open(img).size
            out.append(Field(img, yolo_boxes(d / folder / "labels" / f"{img.stem}.txt", w, h), "smartphone_pig", split))
    return out


def _mask_boxes(mask: Path, min_area: int, largest: bool = False) -> tuple[Box, ...]:
    from ..runtime.components import component_boxes

    m = np.asarray(Image.open(mask).convert("L")) >= 128  # JPEG masks: threshold at 128
    comps = component_boxes(m, min_area)
    if largest and comps:
        comps = [max(comps, key=lambda c: c[2])]
    return tuple(tuple(b) for b, _, _ in comps)


def _sigtuple(root: Path, seed: int = 0) -> list[Field]:
    from .segdata import sigtuple_min_wbc_area, sigtuple_test_fields

    d = root / CATALOG["sigtuple"].path
    if not d.is_dir():
        raise DataError(f"{d}: sigtuple not found under the data root")
    ids = sorted(p.stem for p in d.glob("train-*.jpg")
                 if not p.stem.endswith("-mask") and (d / f"{p.stem}-mask.jpg").is_file())
    val = set(np.random.default_rng(seed).permutation(len(ids))[: round(0.1 * len(ids))].tolist())
    out = [Field(d / f"{n}.jpg", _mask_boxes(d / f"{n}-mask.jpg", 50, largest=True), "sigtuple",
                 "val" if i in val else "train") for i, n in enumerate(ids)]
    min_area = sigtuple_min_wbc_area(root, seed)
    out += [Field(img, _mask_boxes(m, min_area), "sigtuple", "test") for img, m in sigtuple_test_fields(root)]
    return out


_LOADERS = {"bccd": _bccd, "smartphone_pig": _pig, "sigtuple": _sigtuple}


def field_list(root: Path, sources, split: str | None = None) -> list[Field]:
    """Every field of ``sources`` (a tuple, or a ``fields:...`` name), of one split or all."""
    if isinstance(sources, str):
        sources = parse_fields_dataset(sources)
    out = []
    for s in sources:
        out += [f for f in _LOADERS[s](Path(root)) if split is None or f.split == split]
    return out
