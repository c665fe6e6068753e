"""Near-duplicate detection across splits with a 64-bit DCT perceptual hash (pHash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_D = _dct_matrix(32)


def phash(img: np.ndarray) -> int:
    """pHash: 32x32 gray, 2-D DCT, top-left 8x8 (minus DC) against its median -> 64 bits."""
    g = np.asarray(
        Image.fromarray(img.squeeze() if img.shape[-1] == 1 else img)
        .convert("L")
        .resize((32, 32), Image.Resampling.LANCZOS),
        float,
    )
    c = (_D @ g @ _D.T)[:8, :8].flatten()
    bits = c > np.median(c[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hashes(images: np.ndarray) -> np.ndarray:
    return np.array([phash(im) for im in images], dtype=np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    b = np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1)
    return b.sum(-1)


def cross_split_duplicates(ds, threshold: int = 4, max_pairs: int = 1000) -> dict[str, list[tuple[str, str, int]]]:
    hs = {s: hashes(sp.images) for s, sp in ds.splits.items()}
    out = {}
    names = list(ds.splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs = []
            for ia, ha in enumerate(hs[a]):
                d = _popcount(np.bitwise_xor(hs[b], ha))
                for ib in np.flatnonzero(d <= threshold):
                    pairs.append((ds.splits[a].ids[ia], ds.splits[b].ids[ib], int(d[ib])))
                if len(pairs) >= max_pairs:
                    break
            out[f"{a}-{b}"] = pairs
    return out


@dataclass
class DataCheck:
    dataset: object  # the loaded edge_wbc.data.Dataset
    counts: dict[str, dict[str, int]]
    threshold: int
    near_duplicates: dict[str, list[tuple[str, str, int]]]

    def to_json(self) -> dict:
        return {"dataset": self.dataset.name, "counts": self.counts, "threshold": self.threshold,
                "near_duplicates": {k: [list(p) for p in v] for k, v in self.near_duplicates.items()}}


def check_dataset(name: str, size: int = 28, data=None, threshold: int = 4, json_out: Path | None = None) -> DataCheck:
    """``edge-wbc data check``: class counts per split and near-duplicate images across splits."""
    import json

    from ..fileio import atomic_write_text
    from ..spec import ModelSpec
    from .loaders import load_dataset

    ds = load_dataset(name, ModelSpec("classification", size, size, ("a", "b")), data=data)
    res = DataCheck(ds, ds.counts(), threshold, cross_split_duplicates(ds, threshold))
    if json_out:
        atomic_write_text(json_out, json.dumps(res.to_json(), indent=2))
    return res
