"""Labelled cell sets as a field model sees them: every image through the WBC-centred crop.

:func:`load_cell_crops` lists the cells of one or more sources (:mod:`edge_wbc.data.cells`), crops
each with :func:`edge_wbc.tasks.wbccrop.canonical_crop` (the same function ``classify`` and ``count``
use) and keeps the crops at ``store`` px in a cache file under the user cache dir, keyed by the file
list, the crop ratio, the segmenter's sha256 and the size; nothing derived from the data is written
anywhere else. :func:`load_for_spec` gives converters, calibration and the bench one way to read the
data a model was trained on, whatever its crop.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import Dataset, Split, load_dataset
from ..data.cells import VOCAB, CellItems, list_cells
from ..data.containers import sample_indices
from ..data.roots import cache_dir
from ..errors import ImageError
from ..preprocess import load_image
from ..runtime.wbccrop import canonical_crop, crop_segmenter

#: The size the crops are cached at (training draws random crops of it, then resizes to the model).
STORE = 80


@dataclass
class CellCrops:
    """Canonical crops (N, store, store, 3) uint8 with their labels, sources, splits and WBC-found flags."""

    x: np.ndarray
    items: CellItems
    found: np.ndarray  # bool: the segmenter found a WBC (False: the centre square was taken)

    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.items.labels, np.int64)

    @property
    def src(self) -> np.ndarray:
        return np.asarray(self.items.sources)

    @property
    def split(self) -> np.ndarray:
        return np.asarray(self.items.splits)


def _key(items: CellItems, ratio: float, seg_path: Path, store: int) -> str:
    h = hashlib.sha256()
    h.update(hashlib.sha256(seg_path.read_bytes()).digest())
    h.update(json.dumps([ratio, store]).encode())
    for p, y, s, sp in zip(items.paths, items.labels, items.sources, items.splits):
        st = Path(p).stat()
        h.update(f"{p}|{st.st_size}|{int(st.st_mtime)}|{y}|{s}|{sp}\n".encode())
    return h.hexdigest()[:24]


def crop_items(
    items: CellItems, ratio: float, segmenter: str, store: int = STORE, cache: bool = True, progress=None
) -> CellCrops:
    """The canonical crop of every listed cell at ``store`` px (cached; unreadable files are errors)."""
    seg = crop_segmenter(segmenter)
    path = cache_dir() / "crops" / f"{_key(items, ratio, seg.path, store)}.npz"
    if cache and path.is_file():
        z = np.load(path)
        return CellCrops(z["x"], items, z["found"].astype(bool))
    x = np.empty((len(items), store, store, 3), np.uint8)
    found = np.zeros(len(items), bool)
    for i, p in enumerate(items.paths):
        try:
            crop, f = canonical_crop(load_image(p), seg, ratio)
        except ImageError:
            raise
        x[i] = np.asarray(crop.resize((store, store), Image.Resampling.BICUBIC))
        found[i] = f.found
        if progress:
            progress(i + 1, len(items))
    if cache:
        from ..fileio import atomic_open

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, x=x, found=found)
    return CellCrops(x, items, found)


def load_cell_crops(
    sources,
    data=None,
    seed: int = 0,
    ratio: float = 1.5,
    segmenter: str = "wbc_unet_int8",
    label_map=None,
    store: int = STORE,
    progress=None,
) -> CellCrops:
    return crop_items(list_cells(sources, data, seed, label_map), ratio, segmenter, store, progress=progress)


def to_model_size(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crops (N, s, s, 3) -> (N, H, W, 3) uint8, bicubic (the runtime's resampling of a 'wbc' crop)."""
    h, w = size
    if x.shape[1:3] == (h, w):
        return x
    return (
        np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BICUBIC)) for a in x])
        if len(x)
        else np.zeros((0, h, w, 3), np.uint8)
    )


def crops_dataset(cc: CellCrops, size: tuple[int, int], name: str, mask=None) -> Dataset:
    """A :class:`Dataset` of the crops (``mask`` selects cells), splits as listed, groups = '<source>:<id>'."""
    keep = np.ones(len(cc.y), bool) if mask is None else np.asarray(mask, bool)
    splits = {}
    for s in ("train", "val", "test"):
        idx = np.flatnonzero(keep & (cc.split == s))
        splits[s] = Split(
            to_model_size(cc.x[idx], size),
            cc.y[idx],
            [str(cc.items.paths[i]) for i in idx],
            [f"{cc.items.sources[i]}:{cc.items.groups[i]}" for i in idx],
        )
    return Dataset(name, VOCAB, splits, source=name)


def load_for_spec(name: str, spec, data=None, seed: int = 0, **kw) -> Dataset:
    """The dataset ``name`` as the model of ``spec`` sees it: canonical crops for a 'wbc' crop model
    (``name`` is a comma-separated list of cell sources), else :func:`edge_wbc.data.load_dataset`."""
    if spec is not None and spec.crop == "wbc":
        sources = [s for s in name.split(",") if s]
        only, sub = kw.get("only"), kw.get("subsample")
        if only or sub:  # a few cells of one split (bench --limit): crop only those, no cache
            items = list_cells(sources, data, seed)
            keep = np.asarray(items.splits) == only if only else np.ones(len(items), bool)
            if sub:  # the project's stratified, seeded sample (as bench --limit takes of every dataset)
                idx = np.flatnonzero(keep)
                keep = np.zeros(len(items), bool)
                keep[idx[sample_indices(np.asarray(items.labels)[idx], min(sub[0], len(idx)), sub[1])]] = True
            cc = crop_items(items.select(keep), spec.crop_ratio, spec.crop_model, cache=False)
        else:
            cc = load_cell_crops(sources, data, seed, spec.crop_ratio, spec.crop_model)
        return crops_dataset(cc, (spec.input_height, spec.input_width), name)
    return load_dataset(name, spec, data=data, seed=seed, **kw)
