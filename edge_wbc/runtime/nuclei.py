"""A WBC detector without a model: the stained nuclei of a field at the canonical scale (NumPy + Pillow).

In a Romanowsky-type stain (Giemsa, Wright, May-Grünwald, Leishman and the rapid field stains) the
nucleus of a white cell is the one large structure that is much bluer than it is green: red cells are
pink (green and blue alike), the background is pale, platelets are blue but small. On a field
resampled to :data:`~edge_wbc.defaults.DETECTOR_UM_PER_PX` (its red-cell estimate), :func:`detect_nuclei`

1. scores every pixel by blue minus green, ignoring the black surround of an eyepiece photo
   (every channel at or below ``void``);
2. keeps the pixels above the field's own threshold, ``median + k x std`` of that score (at least
   ``floor``), so that a paler or darker stain moves the threshold with it;
3. opens the mask (min then max filter, ``open_px``) to drop specks and grain, then joins the lobes
   of one nucleus (a neutrophil's three to five) with a max filter of ``join_px``;
4. keeps each joined component whose opened core has at least ``min_area_px`` pixels (a platelet
   is smaller), and reports the square (``square``) or the box around it, grown ``grow`` times about
   its centre, as the WBC.

There are no weights: nothing here is derived from any dataset but the few numbers of
:class:`NucleusRule`, chosen on the val fields of the field sources (``benchmarks/nuclei_detect.py``,
which also reports them leave-one-source-out). It fails where the stain does: an unstained or
grayscale field, or a stain whose nuclei are not bluer than green, gives no nuclei.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image, ImageFilter

from .components import label_components

#: The name that picks this detector wherever a detector model is asked for (``count --detector nuclei``).
NUCLEI_DETECTOR = "nuclei"


@dataclass(frozen=True)
class NucleusRule:
    """The numbers of the nucleus detector (pixels are at the canonical scale)."""

    k: float = 3.0  # threshold: median + k x std of blue - green over the field's lit pixels ...
    floor: float = 25.0  # ... and at least this (0-255 units)
    void: float = 30.0  # pixels with every channel at or below this are outside the field
    open_px: int = 1  # opening (min then max filter) size, 1: none (grain and specks fall to min_area_px)
    join_px: int = 5  # max filter that joins the lobes of one nucleus
    min_area_px: int = 40  # nucleus pixels a WBC has at least (a platelet has fewer)
    grow: float = 1.0  # the WBC box: the joined nucleus box grown this much about its centre ...
    square: bool = True  # ... made square on its longer side first

    @classmethod
    def from_dict(cls, d: dict | None) -> NucleusRule:
        if not d:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"nucleus rule: unknown keys {unknown}; valid keys are {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


#: A nucleus box counts as a WBC the model already found when its IoU with the model's box is above this,
#: or its centre lies inside it (``count``'s default adds only the nuclei the model missed).
COVERED_IOU = 0.2


def covered(box, boxes) -> bool:
    """``box`` overlaps one of ``boxes`` (IoU above :data:`COVERED_IOU`, or its centre inside one)."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for b in boxes:
        if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]:
            return True
        iw, ih = min(x1, b[2]) - max(x0, b[0]), min(y1, b[3]) - max(y0, b[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter / ((x1 - x0) * (y1 - y0) + (b[2] - b[0]) * (b[3] - b[1]) - inter) > COVERED_IOU:
                return True
    return False


def _filter(mask: np.ndarray, f) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(f)) > 127


def nucleus_masks(a: np.ndarray, rule: NucleusRule = NucleusRule()) -> tuple[np.ndarray, np.ndarray]:
    """(opened nucleus mask, joined mask) of an RGB uint8 field at the canonical scale."""
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"detect_nuclei wants an (H, W, 3) RGB array, got shape {a.shape}")
    s = a[..., 2].astype(np.float32) - a[..., 1].astype(np.float32)
    lit = a.max(-1) > rule.void
    if not lit.any():
        empty = np.zeros(a.shape[:2], bool)
        return empty, empty
    v = s[lit]
    thr = max(rule.floor, float(np.median(v)) + rule.k * float(v.std()))
    m = (s > thr) & lit
    if rule.open_px > 1:
        m = _filter(_filter(m, ImageFilter.MinFilter(rule.open_px)), ImageFilter.MaxFilter(rule.open_px))
    joined = _filter(m, ImageFilter.MaxFilter(rule.join_px)) if rule.join_px > 1 else m
    return m, joined


def nucleus_components(a: np.ndarray, rule: NucleusRule = NucleusRule()) -> tuple[np.ndarray, tuple[int, int]]:
    """(K, 6) float array of the joined components (x0, y0, x1, y1, core pixels, pixels) and the shape."""
    core, joined = nucleus_masks(a, rule)
    h, w = joined.shape
    if not joined.any():
        return np.zeros((0, 6)), (h, w)
    lab, n = label_components(joined)
    core_area = np.bincount(lab[core], minlength=n + 1)
    area = np.bincount(lab.ravel(), minlength=n + 1)
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs]
    x0, y0 = np.full(n + 1, w), np.full(n + 1, h)
    x1, y1 = np.zeros(n + 1, int), np.zeros(n + 1, int)
    np.minimum.at(x0, ids, xs)
    np.minimum.at(y0, ids, ys)
    np.maximum.at(x1, ids, xs + 1)
    np.maximum.at(y1, ids, ys + 1)
    return np.stack([x0, y0, x1, y1, core_area, area], 1)[1:].astype(np.float64), (h, w)


def component_wbcs(comps: np.ndarray, shape: tuple[int, int], rule: NucleusRule) -> list[tuple[list[float], float]]:
    """The WBC boxes of :func:`nucleus_components`' components under ``rule``'s area and box numbers."""
    h, w = shape
    out = []
    for x0, y0, x1, y1, core, area in comps[comps[:, 4] >= rule.min_area_px]:
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if rule.square:
            hw = hh = max(hw, hh)
        hw, hh = hw * rule.grow, hh * rule.grow
        out.append(([max(0.0, cx - hw), max(0.0, cy - hh), min(float(w), cx + hw), min(float(h), cy + hh)],
                    float(core / area)))
    return out


def detect_nuclei(a: np.ndarray, rule: NucleusRule = NucleusRule()) -> list[tuple[list[float], float]]:
    """WBC boxes [x0, y0, x1, y1] (``a``'s pixels, clipped to it) with the share of their joined
    component that is nucleus core, one per stained nucleus of at least ``rule.min_area_px`` pixels."""
    comps, shape = nucleus_components(a, rule)
    return component_wbcs(comps, shape, rule)
