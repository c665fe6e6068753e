"""Image scale (µm per pixel) from the red cells, NumPy and Pillow only.

Red cells cover every smear and have a known size: about 7.5 µm across in humans
(:data:`RBC_UM`). The estimator finds their typical diameter in pixels without separating touching
cells:

1. Work copy: the image shrunk so that its long side is at most :data:`WORK_SIDE` px.
2. Cell mask: the green channel (haemoglobin and stains absorb green) above an Otsu threshold of
   darkness, holes filled where the mask is not dense (:data:`FILL_BELOW_COVER`), so pale-centred
   red cells count as discs. Pixels darker than
   :data:`VOID_LEVEL` in every channel (the black surround of an eyepiece photo), and blue-purple
   pixels (WBC nuclei and granules: red < 0.8 blue and blue - green > 60), are left out of both
   cells and background; a component that touches them is not taken for a round red cell.
3. Radial autocorrelation of the mean-free mask (FFT). For discs of diameter D it falls to half its
   zero-lag value at about :data:`HALF_FRAC` · D, whatever their number or packing; the constant is
   measured on BCCD train smears against their VOC red-cell boxes (``benchmarks/scale_eval.py``).
4. Where the cells came out smaller than 0.6 or larger than 2.5 times :data:`TARGET_D` px in the
   first copy, a second pass on a copy resampled so that they are about :data:`TARGET_D` px across
   (central window of at most :data:`WORK_SIDE` px), which keeps small cells from being blurred by
   the first shrink.

The confidence (0-1) grows with the number of red-cell discs the mask holds (area / disc area,
full at :data:`FULL_CONF_CELLS`) and falls when the two passes disagree. Fewer than
:data:`MIN_RED_CELLS` discs, or a mask that covers almost nothing or almost everything, is no
estimate (``ScaleEstimate.ok`` False): a single-cell crop, a blank slide, a photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import EdgeWBCError

#: Human red-cell diameter, µm (normal range about 6.2-8.2).
RBC_UM = 7.5

#: The valid range of a given or estimated scale, µm per pixel.
UM_PER_PX_RANGE = (0.02, 5.0)

#: Long side of the estimator's work copies, px.
WORK_SIDE = 256

#: Red-cell diameter, px, that the second pass resamples to.
TARGET_D = 16.0

#: Autocorrelation half-width / disc diameter (fitted on BCCD train smears, see the module doc).
HALF_FRAC = 0.2275

#: Red cells narrower than this (px, at the input's size) cannot be resolved: no estimate.
MIN_RBC_PX = 4.0

#: Round single red cells needed to take their median diameter instead of the autocorrelation.
MIN_ROUND = 5

#: Equivalent diameter of a round single cell's mask / its VOC box side (fitted on BCCD train smears).
ROUND_FRAC = 1.0

#: Fewer red-cell discs than this: no estimate.
MIN_RED_CELLS = 4.0

#: Red-cell discs for full confidence.
FULL_CONF_CELLS = 60.0

#: Fill the holes of the cell mask (pale red-cell centres) ...
FILL_HOLES = True

#: ... where the mask covers less than this share of the field: in denser fields the holes are the
#: gaps between touching cells (pig blood has no pale centres), and filling them merges the cells.
FILL_BELOW_COVER = 0.55

#: Pixels darker than this share of the image's 99th brightness percentile are void too.
VOID_SHARE = 0.45

#: Pixels darker than this in every channel are void (outside an eyepiece's field of view).
VOID_LEVEL = 40


class ScaleError(EdgeWBCError):
    """A given scale is out of range."""


def check_um_per_px(v: float) -> float:
    lo, hi = UM_PER_PX_RANGE
    if not (lo <= v <= hi):  # also catches NaN
        raise ScaleError(f"--um-per-px {v}: must be a number from {lo:g} to {hi:g} µm per pixel")
    return float(v)


@dataclass
class ScaleEstimate:
    um_per_px: float | None  # None: no estimate
    rbc_px: float | None  # red-cell diameter in the input's pixels
    confidence: float
    red_cells: float  # red-cell discs in the mask (area / disc area), at the input's full size
    reason: str = ""  # why there is no estimate

    @property
    def ok(self) -> bool:
        return self.um_per_px is not None


def _otsu(v: np.ndarray) -> float:
    hist = np.bincount(v.ravel().astype(np.int64), minlength=256)[:256].astype(np.float64)
    p = hist / max(1.0, hist.sum())
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    den = omega * (1 - omega)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(den > 0, (mu[-1] * omega - mu) ** 2 / den, 0)
    return float(np.argmax(s))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region that does not reach the border filled."""
    from ..runtime.components import label_components

    lab, n = label_components(~mask)
    if n == 0:
        return mask
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    outside = np.zeros(n + 1, bool)
    outside[border] = True
    outside[0] = False
    return mask | ~outside[lab] & (lab > 0)


def cell_mask(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cells, valid) boolean maps of an RGB uint8 array (see the module doc, step 2)."""
    mx = a.max(axis=-1)
    r, g_, b = (a[..., i].astype(np.int32) for i in range(3))
    nucleus = (r * 5 < b * 4) & (b - g_ > 60)  # WBC nuclei and granules: blue-purple, not red
    valid = (mx > max(VOID_LEVEL, VOID_SHARE * float(np.percentile(mx, 99)))) & ~nucleus
    g = 255 - a[..., 1].astype(np.int32)  # darkness in green
    if valid.sum() < 16:
        return np.zeros(valid.shape, bool), valid
    t = _otsu(g[valid])
    cells = (g > t) & valid
    if FILL_HOLES and cells[valid].mean() < FILL_BELOW_COVER:
        cells = _fill_holes(cells) & valid
    return cells, valid


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (fast FFT sizes)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _radial_profile(m: np.ndarray, valid: np.ndarray, r_max: int) -> np.ndarray:
    """Normalised autocorrelation of the mean-free mask, averaged over rings r = 0..r_max."""
    h, w = m.shape
    f = m[valid].mean()
    x = np.where(valid, m.astype(np.float32) - f, 0).astype(np.float32)
    H, W = _fast_len(h + r_max + 1), _fast_len(w + r_max + 1)  # zero padding: no wrap-around
    F = np.fft.rfft2(x, (H, W))
    ac = np.fft.irfft2(F * np.conj(F), (H, W))
    V = np.fft.rfft2(valid.astype(np.float32), (H, W))
    n = np.fft.irfft2(V * np.conj(V), (H, W))  # valid pixel pairs at each lag
    ys = np.r_[0 : r_max + 1, -r_max:0]
    xs = np.r_[0 : r_max + 1, -r_max:0]
    sub_ac = ac[np.ix_(ys % H, xs % W)]
    sub_n = n[np.ix_(ys % H, xs % W)]
    rr = np.hypot(*np.meshgrid(ys, xs, indexing="ij"))
    ring = np.rint(rr).astype(int)
    use = (ring <= r_max) & (sub_n > 0.05 * sub_n.max())
    num = np.bincount(ring[use], (sub_ac / np.maximum(sub_n, 1))[use], minlength=r_max + 1)
    cnt = np.bincount(ring[use], minlength=r_max + 1)
    prof = num / np.maximum(cnt, 1)
    return prof / prof[0] if prof[0] > 0 else prof


def _half_width(prof: np.ndarray) -> float | None:
    below = np.nonzero(prof < 0.5)[0]
    if len(below) == 0:
        return None
    i = int(below[0])
    a, b = prof[i - 1], prof[i]
    return (i - 1) + (a - 0.5) / (a - b) if a != b else float(i)


def round_cells(cells: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Equivalent diameters (px) of the mask's components that look like one whole red cell: not on the
    border or the void, bounding box filled 62-90 % (a disc fills 79 %), aspect at most 1.3, >= 4 px."""
    from ..runtime.components import label_components

    lab, n = label_components(cells)
    if n == 0:
        return np.zeros(0)
    h, w = cells.shape
    ys, xs = np.nonzero(lab)
    k = lab[ys, xs]
    area = np.bincount(k, minlength=n + 1)
    x0 = np.full(n + 1, w)
    y0 = np.full(n + 1, h)
    x1 = np.zeros(n + 1, int)
    y1 = np.zeros(n + 1, int)
    np.minimum.at(x0, k, xs)
    np.minimum.at(y0, k, ys)
    np.maximum.at(x1, k, xs)
    np.maximum.at(y1, k, ys)
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    inner = np.ones(n + 1, bool)
    inner[np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))] = False
    # a component next to the void (eyepiece edge) is cut by it
    edge = ~valid & (np.roll(cells, 1, 0) | np.roll(cells, -1, 0) | np.roll(cells, 1, 1) | np.roll(cells, -1, 1))
    if edge.any():
        near = np.zeros_like(cells)
        near[:, :] = np.roll(edge, 1, 0) | np.roll(edge, -1, 0) | np.roll(edge, 1, 1) | np.roll(edge, -1, 1)
        inner[np.unique(lab[near & cells])] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = area / (bw * bh)
        aspect = np.maximum(bw, bh) / np.maximum(1, np.minimum(bw, bh))
    ok = inner & (fill >= 0.62) & (fill <= 0.90) & (aspect <= 1.3) & (np.minimum(bw, bh) >= 4)
    ok[0] = False
    return np.sqrt(4 * area[ok] / np.pi)


def _diameter(a: np.ndarray) -> tuple[float | None, float, str]:
    """(red-cell diameter px or None, mask cover share, reason) of one work copy: the median of the
    round single cells where there are at least :data:`MIN_ROUND` of them, else the autocorrelation."""
    cells, valid = cell_mask(a)
    if valid.mean() < 0.1:
        return None, 0.0, "no_red_cells"
    cover = float(cells[valid].mean())
    if cover < 0.02 or cover > 0.95:
        return None, cover, "no_red_cells"
    d = round_cells(cells, valid)
    if len(d) >= MIN_ROUND:
        return float(np.median(d)) / ROUND_FRAC, cover, ""
    r_max = max(8, min(a.shape[:2]) // 3)
    hw = _half_width(_radial_profile(cells, valid, r_max))
    if hw is None:
        return None, cover, "no_red_cells"
    return hw / HALF_FRAC, cover, ""


def _resize(img: Image.Image, f: float) -> Image.Image:
    size = (max(1, int(round(img.width * f))), max(1, int(round(img.height * f))))
    return img if size == img.size else img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _central_box(size: tuple[int, int], side: float) -> tuple[int, int, int, int]:
    w, h = size
    return (int(max(0, w / 2 - side / 2)), int(max(0, h / 2 - side / 2)),
            int(min(w, w / 2 + side / 2)), int(min(h, h / 2 + side / 2)))


def estimate_scale(img: Image.Image, rbc_um: float = RBC_UM) -> ScaleEstimate:
    """µm per pixel of ``img`` from its red cells (see the module doc)."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    f1 = min(1.0, WORK_SIDE / max(img.size))
    a1 = np.asarray(_resize(img, f1))
    d1, cover, why = _diameter(a1)
    if d1 is None:
        return ScaleEstimate(None, None, 0.0, 0.0, why)
    # second pass: red cells at about TARGET_D px, a central window of at most WORK_SIDE px
    f2 = min(2.0, TARGET_D / (d1 / f1))
    side = WORK_SIDE / f2  # window side in input pixels
    box = _central_box(img.size, side)
    d2 = None
    if not (0.6 * TARGET_D <= d1 <= 2.5 * TARGET_D):  # cells too small or too large in the first copy
        a2 = np.asarray(_resize(img.crop(box), f2))
        if min(a2.shape[:2]) >= 3 * TARGET_D:
            d2 = _diameter(a2)[0]
    d_px = d2 / f2 if d2 is not None else d1 / f1
    valid_px = float((a1.max(axis=-1) > VOID_LEVEL).sum()) / (f1 * f1)
    n_cells = cover * valid_px / (np.pi * d_px**2 / 4)
    if d_px < MIN_RBC_PX:  # noise, texture: nothing cell-sized
        return ScaleEstimate(None, round(d_px, 2), 0.0, 0.0, "no_red_cells")
    if n_cells < MIN_RED_CELLS:
        return ScaleEstimate(None, round(d_px, 2), 0.0, round(n_cells, 1), "too_few_red_cells")
    agree = 1.0 if d2 is None else float(np.exp(-abs(np.log((d2 / f2) / (d1 / f1))) / 0.15))
    conf = min(1.0, n_cells / FULL_CONF_CELLS) * (0.5 + 0.5 * agree)
    um = rbc_um / d_px
    lo, hi = UM_PER_PX_RANGE
    if not (lo <= um <= hi):
        return ScaleEstimate(None, round(d_px, 2), 0.0, round(n_cells, 1), "scale_out_of_range")
    return ScaleEstimate(float(um), float(d_px), round(conf, 3), round(n_cells, 1))


#: Normalised gradient (see :func:`sharpness`) under which a field counts as blurred. On the held-out
#: fields, sharp minimum / blurred (Gaussian, a quarter of a red cell) maximum: BCCD 0.0178 / 0.0106,
#: smartphone_pig 0.0247 / 0.0229, SigTuple 0.0551 / 0.0500 (median blurred 0.0235: mostly missed there).
BLUR_BELOW = 0.014


def sharpness(img: Image.Image, rbc_px: float | None = None) -> float:
    """Mean absolute gray-level step between neighbours / the field's contrast (p98 - p2), on the work
    copy (long side :data:`WORK_SIDE`), or on a copy where red cells of ``rbc_px`` are :data:`TARGET_D` px.
    ``field_scale`` uses the work copy: a blurred field's red-cell estimate comes out larger, so the
    scale-normalised copy would hide the blur."""
    f = TARGET_D / rbc_px if rbc_px else WORK_SIDE / max(img.size)
    f = min(1.0, f)
    side = WORK_SIDE / f
    box = _central_box(img.size, side)
    g = np.asarray(_resize(img.crop(box), f).convert("L"), np.float32)
    if min(g.shape) < 3:
        return 0.0
    lo, hi = np.percentile(g, [2, 98])
    if hi - lo < 1:
        return 0.0
    step = 0.5 * (np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
    return float(step / (hi - lo))


@dataclass
class FieldScale:
    """The scale a field is processed at, and how it was found."""

    um_per_px: float
    source: str  # "estimated" | "given" | "fallback"
    confidence: float
    red_cells: float
    flags: list[str]
    note: str = ""

    @property
    def single_cell(self) -> bool:
        return "single_cell" in self.flags

    @property
    def unusable(self) -> bool:
        """Not a smear field: no red cells (and not a single-cell crop), or blurred."""
        return bool({"no_red_cells", "blurred"} & set(self.flags))

    def as_json(self) -> dict:
        return {"um_per_px": round(self.um_per_px, 5), "scale_source": self.source,
                "scale_confidence": round(self.confidence, 3), "red_cells": round(float(self.red_cells), 1),
                "flags": list(self.flags), **({"scale_note": self.note} if self.note else {})}


#: An image without enough red cells whose long side is at most this is taken for a single-cell crop.
SINGLE_CELL_MAX_SIDE = 400

#: ... unless it holds at least this many red-cell discs (PBC and wbc_seg crops hold up to 24: the red cells
#: around the WBC, cut by the frame; a 335x392 SigTuple field about 80).
SMALL_MIN_RED_CELLS = 30.0

#: A larger image with at least this many red-cell discs (but fewer than MIN_RED_CELLS) is processed at
#: the model's training scale and flagged ``few_red_cells``; with fewer, it is flagged ``no_red_cells``.
SOME_RED_CELLS = 2.0


def field_scale(img: Image.Image, fallback_um: float, given: float | None = None,
                single_cell_max_side: int = SINGLE_CELL_MAX_SIDE) -> FieldScale:
    """The scale for one field: ``given`` (checked), else the red-cell estimate, else ``fallback_um``
    (the model's training scale) with a flag: ``single_cell`` for a small image without enough red
    cells (a one-WBC crop), ``few_red_cells`` for a larger one with a few, ``no_red_cells`` for one
    with none (a photo, a blank slide: no WBCs are reported). A field whose :func:`sharpness` is below
    :data:`BLUR_BELOW` is flagged ``blurred`` (no WBCs either)."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    est = estimate_scale(img)
    flags: list[str] = []
    if given is not None:
        fs = FieldScale(check_um_per_px(given), "given", 1.0, est.red_cells, flags)
    elif est.ok and (max(img.size) > single_cell_max_side or est.red_cells >= SMALL_MIN_RED_CELLS):
        fs = FieldScale(est.um_per_px, "estimated", est.confidence, est.red_cells, flags)
    elif est.reason == "scale_out_of_range" and max(img.size) > single_cell_max_side:
        # enough red cells, but their size gives a scale outside UM_PER_PX_RANGE (not "too few red cells")
        lo, hi = UM_PER_PX_RANGE
        flags.append("scale_out_of_range")
        fs = FieldScale(fallback_um, "fallback", 0.0, est.red_cells, flags,
                        f"red cells of {est.rbc_px:.0f} px ({est.red_cells:.1f} found) give "
                        f"{RBC_UM / est.rbc_px:.3g} µm per pixel, outside {lo}-{hi}: processed at the model's "
                        "training scale (give the scale with --um-per-px, or resize the image)")
    else:
        single = max(img.size) <= single_cell_max_side
        kind = "single_cell" if single else "few_red_cells" if est.red_cells >= SOME_RED_CELLS else "no_red_cells"
        flags.append(kind)
        fs = FieldScale(fallback_um, "fallback", 0.0, est.red_cells, flags,
                        f"too few red cells to estimate the scale ({est.red_cells:.1f} found, "
                        f"{SMALL_MIN_RED_CELLS if single else MIN_RED_CELLS:.0f} needed): " + {
                            "single_cell": "taken for a single-cell crop",
                            "few_red_cells": "processed at the model's training scale",
                            "no_red_cells": "not a smear field; no WBCs reported"}[kind])
    if not fs.single_cell and sharpness(img) < BLUR_BELOW:
        flags.append("blurred")
    return fs
