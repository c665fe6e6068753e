"""A one-line hint when the inputs do not look like what the model was trained on.

The rule is deliberately simple and cheap (the first 16 inputs, decoded at 32x32): their median
longer side against the sizes of the images the model's dataset was made of, square crops against
wide fields, and their median colour and contrast against the training images' (a z-distance). It
catches the common mistakes: BCCD crops given to the BloodMNIST model (bluer, flatter: z about 4),
or a whole smear field given to a crop classifier; it cannot prove that inputs do fit.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median
from typing import Iterable

#: Per dataset: the range of the longer side (px) of the images it was made from, whether they are
#: single-cell crops or whole smear fields, and their "look": mean R, G, B and pixel std (0-255) of
#: the image at 32x32, with the spread of each over images. Measured on 60 test images each
#: (BloodMNIST npz; pbc128/test; BCCD_cropped) of the shared data: BloodMNIST is PBC downsampled, so
#: both look alike; BCCD crops are bluer and flatter (std 30 vs 52).
TRAINING_IMAGES = {
    "bloodmnist": ((28, 363), "crop", (200.0, 165.3, 176.0, 51.6), (13.5, 14.8, 5.7, 7.6)),
    "pbc128": ((128, 363), "crop", (203.6, 169.0, 177.2, 51.8), (13.6, 15.8, 5.6, 7.5)),
    "bccd4": ((131, 330), "crop", (176.6, 161.0, 192.1, 29.9), (7.5, 8.1, 6.2, 3.9)),
    "bccd2": ((131, 330), "crop", (176.6, 161.0, 192.1, 29.9), (7.5, 8.1, 6.2, 3.9)),
}
RATIO = 3.0  # the median side may be up to 3x outside the training range without a hint
FIELD_ASPECT = 1.25  # a crop dataset's images are square; wider inputs look like fields
LOOK_Z = 3.0  # distance (in training spreads) of the inputs' median look from the training look


def image_stats(paths: Iterable[Path], n: int = 16) -> list[tuple[int, int, tuple[float, ...]]]:
    """(width, height, look) of up to ``n`` readable images; look = mean R, G, B and std at 32x32."""
    import numpy as np
    from PIL import Image

    out = []
    for p in paths:
        if len(out) >= n:
            break
        try:
            with Image.open(p) as im:
                size = im.size
                im.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale, cheap
                a = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
        except Exception:  # bad files are the run's to report, not the hint's
            continue
        out.append((size[0], size[1], (*a.reshape(-1, 3).mean(0).tolist(), float(a.std()))))
    return out


def input_hint(spec, stats: list, model_name: str, shipped: list[dict] | None = None) -> str | None:
    """A hint line, or None when the inputs look like the training images (or nothing is known)."""
    known = TRAINING_IMAGES.get(spec.dataset)
    if not known or not stats:
        return None
    (lo, hi), kind, look, spread = known
    med = median(max(w, h) for w, h, _ in stats)
    aspect = median(max(w, h) / max(1, min(w, h)) for w, h, _ in stats)
    looks = [median(s[2][i] for s in stats) for i in range(4)]
    z = math.sqrt(sum(((x - m) / sd) ** 2 for x, m, sd in zip(looks, look, spread)))
    looks_field = kind == "crop" and aspect >= FIELD_ASPECT
    far_size = med > RATIO * hi or med < lo / RATIO
    if not (looks_field or far_size or z > LOOK_Z):
        return None
    if looks_field:
        what = f"{med:.0f} px wide fields"
    elif far_size:
        what = f"about {med:.0f} px"
    else:
        what = f"unlike them in colour and contrast (mean RGB {looks[0]:.0f},{looks[1]:.0f},{looks[2]:.0f}, " \
               f"contrast {looks[3]:.0f} vs {look[0]:.0f},{look[1]:.0f},{look[2]:.0f}, {look[3]:.0f})"
    msg = (f"hint: {model_name} was trained on {spec.dataset} {kind}s ({lo}-{hi} px); these inputs are {what}. "
           f"Its answers may be meaningless here")
    if looks_field:
        msg += "; for whole smear fields use `edge-wbc count`"
    best = _closest(shipped or [], spec, looks, "field" if looks_field else "crop")
    if best and not looks_field:
        msg += f"; try -m {best}"
    return msg + " (`edge-wbc models` lists the shipped models)."


def _closest(shipped: list[dict], spec, looks: list[float], kind: str) -> str | None:
    """The shipped model of the same task whose training images look most like the inputs."""
    cands = []
    for r in shipped:
        t = TRAINING_IMAGES.get(r["dataset"])
        if not t or t[1] != kind or r["task"] != spec.task or r["dataset"] == spec.dataset:
            continue
        z = math.sqrt(sum(((x - m) / sd) ** 2 for x, m, sd in zip(looks, t[2], t[3])))
        cands.append((round(z, 1), -len(r["labels"]), r["quantization"] != "int8", r["name"]))
    return min(cands)[-1] if cands else None
