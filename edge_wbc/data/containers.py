"""Dataset containers: a :class:`Dataset` holds named :class:`Split` s of raw-pixel images and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

SPLITS = ("train", "val", "test")


def sample_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified, seeded sample of ``n`` of ``labels``.

    Each class gets a share of ``n`` proportional to its size (largest remainders), and every class
    present gets at least one when ``n`` allows. The same labels, ``n`` and seed give the same sample.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    want = counts * n / counts.sum()
    k = np.floor(want).astype(int)
    if n >= len(classes):
        k = np.maximum(k, 1)
    while k.sum() > n:  # the floor of one per class can overshoot: take back where it is most over
        k[np.argmax(k - want)] -= 1
    for i in np.argsort(-(want - k), kind="stable"):  # largest remainders first
        if k.sum() >= n:
            break
        if k[i] < counts[i]:
            k[i] += 1
    idx = [rng.choice(np.flatnonzero(labels == c), size=int(m), replace=False) for c, m in zip(classes, k) if m > 0]
    return np.sort(np.concatenate(idx)) if idx else np.zeros(0, int)


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, C) uint8 RGB, raw pixels
    labels: np.ndarray  # (N,) int64
    ids: list[str]  # file names (or "<split>[i]" for npz rows)
    groups: list[str] | None = None  # source smear etc. (for leakage checks)
    population: int | None = None  # size of the split this one was sampled from (None: not a sample)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n], self.ids[:n], self.groups[:n] if self.groups else None)

    def take(self, idx) -> Split:
        idx = np.asarray(idx, int)
        return Split(self.images[idx], self.labels[idx], [self.ids[i] for i in idx],
                     [self.groups[i] for i in idx] if self.groups else None)

    def sample(self, n: int | None, seed: int = 0) -> Split:
        """A stratified, seeded sample of ``n`` images (all of them when ``n`` is None or >= len);
        see :func:`sample_indices`. The images keep the split's order."""
        if n is None or n >= len(self):
            return self
        out = self.take(sample_indices(self.labels, n, seed))
        out.population = self.population or len(self)
        return out

    def concat(self, other: Split) -> Split:
        """This split followed by ``other``; groups are kept when both splits have them."""
        groups = self.groups + other.groups if self.groups is not None and other.groups is not None else None
        return Split(np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]),
                     self.ids + other.ids, groups)


@dataclass
class Dataset:
    name: str
    labels: tuple[str, ...]
    splits: dict[str, Split] = field(default_factory=dict)
    source: str = ""
    license: str = ""
    sample: dict | None = None  # the embedded sample's info (n, source, license) when it was read from there

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(f"dataset {self.name!r} has no split {name!r}: valid splits are {', '.join(self.splits)}")
        return self.splits[name]

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            s: {lab: int((sp.labels == i).sum()) for i, lab in enumerate(self.labels)} for s, sp in self.splits.items()
        }


