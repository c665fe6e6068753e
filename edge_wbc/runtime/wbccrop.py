"""The WBC-centred crop at a canonical scale (``crop: "wbc"`` in a ModelSpec), without TensorFlow.

A field classifier sees every cell the same way, whatever the microscope's magnification or the
framing of the image: the shipped cell segmenter (``wbc_unet_int8``) finds the WBC on the image
resized to its input, and a square of ``ratio`` x the WBC's longer side, centred on the WBC, is cut
out (clamped to the image's longer side; outside the image it is reflect-padded) and resized to the
classifier's input. Training data, ``classify`` and the crops of ``count`` all go through
:func:`canonical_crop`, so there is one preprocessing path.

An image in which no WBC is found is reported as such (``WBCFind.found`` is False): the caller flags
it ``no_wbc`` and never classifies it as if it had one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..defaults import CROP_MIN_WBC_FRAC, CROP_RATIO, MASK_THRESHOLD
from .components import label_components


@dataclass(frozen=True)
class WBCFind:
    """What the segmenter found: the WBC's box in image pixels, or nothing."""

    found: bool
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in image pixels (exclusive max)
    area_frac: float  # the chosen component's share of the image
    n_components: int  # WBC components above the speck floor (several: a field, not a single cell)
    wbc_prob: float  # mean WBC probability inside the chosen component


def _pick(mask: np.ndarray, prob: np.ndarray, min_frac: float) -> tuple[tuple | None, float, int, float]:
    """The component that is large and central: area x (1 - distance of its centroid from the centre)."""
    lab, n = label_components(mask)
    if n == 0:
        return None, 0.0, 0, 0.0
    h, w = mask.shape
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs] - 1
    cy = np.bincount(ids, weights=ys, minlength=n) / np.maximum(area, 1)
    cx = np.bincount(ids, weights=xs, minlength=n) / np.maximum(area, 1)
    dist = np.hypot(cy / h - 0.5, cx / w - 0.5)
    keep = area >= min_frac * h * w
    if not keep.any():
        return None, 0.0, 0, 0.0
    score = np.where(keep, area * np.clip(1.0 - 2.0 * dist, 0.05, 1.0), -1.0)
    k = int(np.argmax(score))
    sel = ids == k
    box = (float(xs[sel].min()), float(ys[sel].min()), float(xs[sel].max() + 1), float(ys[sel].max() + 1))
    return box, float(area[k]) / (h * w), int(keep.sum()), float(prob[ys[sel], xs[sel]].mean())


def find_wbc(
    segmenter, img: Image.Image, threshold: float = MASK_THRESHOLD, min_frac: float = CROP_MIN_WBC_FRAC
) -> WBCFind:
    """The WBC the segmenter sees on ``img`` resized to its input, as a box in ``img``'s pixels."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    probs = segmenter.predict(
        np.asarray(img.resize((segmenter.spec.input_width, segmenter.spec.input_height), Image.Resampling.BICUBIC))[
            None
        ]
    )[0]
    p = probs[..., segmenter.spec.labels.index("wbc")]
    box, frac, n, mean = _pick(p > threshold, p, min_frac)
    if box is None:
        return WBCFind(False, None, 0.0, 0, 0.0)
    sx, sy = img.width / p.shape[1], img.height / p.shape[0]
    x0, y0, x1, y1 = box
    return WBCFind(True, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), frac, n, mean)


def crop_square(size: tuple[int, int], box: tuple[float, float, float, float] | None,
                ratio: float = CROP_RATIO) -> tuple[int, int, int]:
    """(left, top, side) in image pixels of :func:`crop_around`'s square; it may leave the image."""
    W, H = size
    if box is None:
        side, cx, cy = float(min(W, H)), W / 2, H / 2
    else:
        x0, y0, x1, y1 = box
        side = min(float(max(W, H)), ratio * max(x1 - x0, y1 - y0))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(side, 2.0)
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side))


def crop_around(
    img: Image.Image, box: tuple[float, float, float, float] | None, ratio: float = CROP_RATIO
) -> Image.Image:
    """A square of ``ratio`` x the box's longer side around its centre (the whole image when no box),
    at most the image's longer side; reflect-padded where it leaves the image."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    W, H = img.size
    left, top, s = crop_square((W, H), box, ratio)
    if left >= 0 and top >= 0 and left + s <= W and top + s <= H:
        return img.crop((left, top, left + s, top + s))
    pad = s
    a = np.asarray(img)
    mode = "reflect" if min(W, H) > 1 else "edge"
    while pad > 0:  # reflect needs the image to be longer than the pad: pad in steps
        step = min(pad, min(a.shape[0], a.shape[1]) - 1) if mode == "reflect" else pad
        a = np.pad(a, ((step, step), (step, step), (0, 0)), mode=mode)
        pad -= step
        left, top = left + step, top + step
    return Image.fromarray(a).crop((left, top, left + s, top + s))


def canonical_crop(img: Image.Image, segmenter, ratio: float = CROP_RATIO) -> tuple[Image.Image, WBCFind]:
    """The WBC-centred square crop of ``img`` (the whole image, centre-square, when no WBC is found)."""
    find = find_wbc(segmenter, img)
    return crop_around(img, find.box, ratio), find


_SEGMENTERS: dict[tuple[str, int], object] = {}


def crop_segmenter(name_or_path: str | Path, num_threads: int = 1):
    """The segmenter a ``crop: "wbc"`` spec names (a shipped model's name or a path), loaded once per process."""
    from ..assets import resolve_model
    from .segmenter import TFLiteSegmenter

    path = resolve_model(name_or_path)
    key = (str(path), num_threads)
    if key not in _SEGMENTERS:
        _SEGMENTERS[key] = TFLiteSegmenter(path, num_threads=num_threads)
    return _SEGMENTERS[key]
