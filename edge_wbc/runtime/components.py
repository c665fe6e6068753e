"""Connected components of boolean maps (NumPy only): labels, speck removal, boxes.

The runtime's one implementation: segmentation, counting and the WBC-centred crop all use it.
"""

from __future__ import annotations

import numpy as np


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels 1..n of a boolean map, numbered in raster order of each component's first pixel.

    Union-find in numpy (no SciPy in the runtime). Every pixel starts as its own root. Each round
    hooks the larger root of every edge whose two ends have different roots onto the smaller one,
    then compresses every path by pointer jumping. A few rounds settle any shape, spirals included.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    idx_t = np.int32 if h * w < 2**31 else np.int64
    parent = np.arange(h * w, dtype=idx_t)
    pix = np.arange(h * w, dtype=idx_t).reshape(h, w)
    right, down = pix[:, :-1][mask[:, :-1] & mask[:, 1:]], pix[:-1, :][mask[:-1, :] & mask[1:, :]]  # edges' first ends
    a, b = np.concatenate([right, down]), np.concatenate([right + 1, down + w])
    while True:
        ra, rb = parent[a], parent[b]
        diff = ra != rb
        if not diff.any():
            break
        a, b, ra, rb = a[diff], b[diff], ra[diff], rb[diff]  # edges already inside one tree stay there
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every pixel points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots = parent.reshape(h, w)[mask]
    ids = np.unique(roots)  # sorted roots = each component's first pixel in raster order
    out = np.zeros((h, w), np.int32)
    out[mask] = np.searchsorted(ids, roots) + 1
    return out, len(ids)


def drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The boolean map without its 4-connected components of fewer than ``min_area`` pixels."""
    if min_area <= 0 or not mask.any():
        return mask
    lab, n = label_components(mask)
    area = np.bincount(lab.ravel(), minlength=n + 1)
    keep = area >= min_area
    keep[0] = False
    return keep[lab]


def component_boxes(
    mask: np.ndarray, min_area: float = 0, prob: np.ndarray | None = None
) -> list[tuple[list[int], float, int]]:
    """Boxes [x0, y0, x1, y1] (exclusive max), mean of ``prob`` (1.0 without one) and area of each
    4-connected component of ``mask`` with at least ``min_area`` pixels."""
    lab, n = label_components(mask)
    out = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(lab == k)
        if len(ys) < min_area:
            continue
        mean = float(prob[ys, xs].mean()) if prob is not None else 1.0
        out.append(([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], mean, len(ys)))
    return out
