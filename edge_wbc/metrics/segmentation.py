"""Segmentation metrics in plain NumPy: Dice / IoU (at pixel level or at the labels' own grid) and reports.

Used by segmentation training, conversion checks and the benchmarks.
"""

from __future__ import annotations

import numpy as np


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


def _group_masks(groups, n):
    sets = {"all": np.ones(n, bool)}
    for g in sorted(set(groups or ())):
        sets[g] = np.array([x == g for x in groups])
    return sets


def label_grids(split, labels) -> dict:
    """``label_grid`` of each label's masks per source group of a (training) split, where it is > 1."""
    out = {}
    for c, lab in enumerate(labels):
        for gname, m in _group_masks(split.groups, len(split)).items():
            if m.any() and (k := label_grid(split.labels[m][..., c])) > 1:  # label_grid skips masks with unknown pixels
                out[f"{lab}/{gname}"] = k
    return out


def seg_report(
    pred: np.ndarray, target: np.ndarray, labels, groups=None, digits: int | None = 4, grids: dict | None = None
) -> dict:
    """Dice / IoU per label, for all images and per group; per-image Dice rounded to ``digits`` (None: exact).

    Where ``grids`` (from ``label_grids`` of the training split) gives a label/group an annotation
    grid k > 1, the entry also holds ``dice_grid`` / ``iou_grid``: the scores at the labels' resolution.
    """
    rep = {}
    for c, lab in enumerate(labels):
        for gname, m in _group_masks(groups, len(pred)).items():
            keep = m & (target[..., c] >= 0).any(axis=(1, 2))
            if not keep.any():
                continue
            key = f"{lab}/{gname}"
            r = {}
            for suffix, k in [("", 1)] + ([("_grid", grids[key])] if grids and grids.get(key, 1) > 1 else []):
                d, i = dice_iou(pred[keep][..., c], target[keep][..., c], grid=k)
                r |= {f"dice{suffix}": float(d.mean()), f"iou{suffix}": float(i.mean()),
                      f"dice{suffix}_per_image": [float(v) if digits is None else round(float(v), digits) for v in d]}
                if k > 1:
                    r["grid"] = k
            rep[key] = {"dice": r.pop("dice"), "iou": r.pop("iou"), "n": int(keep.sum()), **r}
    return rep


def dice_summary(rep: dict) -> str:
    """One line of a seg_report: Dice per label/group, and at the annotation grid where there is one."""
    return ", ".join(
        f"{k} Dice {v['dice']:.4f}"
        + (f" ({v['dice_grid']:.4f} at its {v['grid']} px label grid)" if "grid" in v else "")
        for k, v in rep.items()
    )
