"""Dataset containers: a :class:`Dataset` holds named :class:`Split` s of raw-pixel images and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, C) uint8 RGB, raw pixels
    labels: np.ndarray  # (N,) int64
    ids: list[str]  # file names (or "<split>[i]" for npz rows)
    groups: list[str] | None = None  # source smear etc. (for leakage checks)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n], self.ids[:n], self.groups[:n] if self.groups else None)

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


