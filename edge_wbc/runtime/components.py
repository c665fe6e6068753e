"""Connected components of boolean maps (NumPy only): labels, speck removal, boxes.

The runtime's one implementation: segmentation, counting and the WBC-centred crop all use it.
"""

from __future__ import annotations

import numpy as np


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels 1..n of a boolean map, numbered in raster order of each component's first pixel.

    NumPy only (no SciPy in the runtime), on runs rather than pixels: each row's runs of True pixels are
    the nodes, and a run is joined to every run of the row above whose columns overlap it. A union-find
    over the runs (each round hooks the larger root of every join onto the smaller, then pointer jumping
    compresses the paths; a few rounds settle any shape, spirals included) gives each run its component,
    whose root is its first run in raster order. A field has some 100x fewer runs than pixels.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    out = np.zeros((h, w), np.int32)
    if h == 0 or w == 0:
        return out, 0
    pad = np.zeros((h, w + 2), np.int8)
    pad[:, 1:-1] = mask
    d = np.diff(pad, axis=1)  # +1 where a run starts, -1 one past where it ends
    rs, cs = np.nonzero(d == 1)  # raster order: rows, then columns
    ce = np.nonzero(d == -1)[1]
    n_runs = len(rs)
    if n_runs == 0:
        return out, 0
    # the runs of the row above that overlap run j (start < its end, end > its start) are one contiguous
    # range [lo, hi] of the sorted runs; keys row * (w + 1) + column keep the rows apart
    key = np.int64(w + 1)
    start_key, end_key = rs * key + cs, rs * key + ce
    above = (rs - 1) * key
    lo = np.searchsorted(end_key, above + cs, side="right")
    hi = np.searchsorted(start_key, above + ce, side="left") - 1
    ok = (rs > 0) & (lo <= hi)
    j, lo, hi = np.nonzero(ok)[0], lo[ok], hi[ok]
    cnt = hi - lo + 1
    a = np.repeat(j, cnt)
    b = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))
    parent = np.arange(n_runs, dtype=np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        diff = ra != rb
        if not diff.any():
            break
        a, b, ra, rb = a[diff], b[diff], ra[diff], rb[diff]  # joins already inside one tree stay there
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every run points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    ids, lab = np.unique(parent, return_inverse=True)  # sorted roots = each component's first run
    out.ravel()[np.flatnonzero(mask)] = np.repeat(lab.astype(np.int32) + 1, ce - cs)
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
