"""A one-line hint when the inputs do not look like what the model was trained on.

The rule is deliberately simple and cheap (image headers only, no decoding): the median longer side
of the first inputs against the typical side of the images the model's dataset was made of, and
square crops against wide fields. It cannot tell stain or microscope apart; it catches the common
mistakes: 200 px BCCD crops given to the 28 px BloodMNIST model, or a whole smear field given to a
crop classifier.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median
from typing import Iterable

#: Typical longer side (px) of the images each dataset holds, and whether they are single-cell
#: crops or whole smear fields (measured on the shared data: BCCD crops median 223 px, fields 640x480).
TRAINING_IMAGES = {
    "bloodmnist": (28, "crop"), "pbc128": (128, "crop"), "bccd4": (223, "crop"), "bccd2": (223, "crop"),
    "seg": (128, "crop"), "wbcseg": (120, "crop"), "bccd_smear": (640, "field"),
}
RATIO = 3.0  # the median side may be up to 3x larger or smaller without a hint
FIELD_ASPECT = 1.25  # a crop dataset's images are square; wider inputs look like fields


def image_sizes(paths: Iterable[Path], n: int = 16) -> list[tuple[int, int]]:
    """(width, height) of up to ``n`` readable images (header only); unreadable files are skipped."""
    from PIL import Image

    out = []
    for p in paths:
        if len(out) >= n:
            break
        try:
            with Image.open(p) as im:
                out.append(im.size)
        except Exception:  # bad files are the run's to report, not the hint's
            continue
    return out


def input_hint(spec, sizes: list[tuple[int, int]], model_name: str, shipped: list[dict] | None = None) -> str | None:
    """A hint line, or None when the inputs look like the training images (or nothing is known)."""
    known = TRAINING_IMAGES.get(spec.dataset)
    if not known or not sizes:
        return None
    side, kind = known
    med = median(max(w, h) for w, h in sizes)
    aspect = median(max(w, h) / max(1, min(w, h)) for w, h in sizes)
    looks_field = kind == "crop" and aspect >= FIELD_ASPECT
    if not looks_field and 1 / RATIO <= med / side <= RATIO:
        return None
    what = f"{med:.0f} px wide fields" if looks_field else f"about {med:.0f} px"
    msg = (f"hint: {model_name} was trained on {spec.dataset} {kind}s of about {side} px; these inputs are {what}. "
           f"Its answers may be meaningless here")
    if looks_field and spec.task != "segmentation":
        msg += "; for whole smear fields use `edge-wbc count`"
    best = _closest(shipped or [], spec, med, "field" if looks_field else "crop")
    if best:
        msg += f"; try -m {best}"
    return msg + " (`edge-wbc models` lists the shipped models)."


def _closest(shipped: list[dict], spec, med: float, kind: str) -> str | None:
    cands = []
    for r in shipped:
        t = TRAINING_IMAGES.get(r["dataset"])
        if not t or t[1] != kind or r["task"] != spec.task or r["dataset"] == spec.dataset:
            continue
        cands.append((abs(math.log(med / t[0])), -len(r["labels"]), r["quantization"] != "int8", r["name"]))
    return min(cands)[-1] if cands else None
