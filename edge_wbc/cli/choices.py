"""Option choices shared by the commands; the conversion modes and I/O types come from the mode table."""

from __future__ import annotations

from enum import Enum

from ..bench.clocks import CLOCKS
from ..converters.modes import CONVERT_MODES, IO_TYPES

Mode = Enum("Mode", {m: m for m in CONVERT_MODES}, type=str)
IOType = Enum("IOType", {t: t for t in IO_TYPES}, type=str)
Clock = Enum("Clock", {c: c for c in CLOCKS}, type=str)


class Optimizer(str, Enum):
    adam = "adam"
    adadelta = "adadelta"
    sgd = "sgd"


class ClassWeights(str, Enum):
    balanced = "balanced"


class SplitName(str, Enum):
    """A split of a dataset, by name (the data itself is :class:`edge_wbc.data.Split`)."""

    train = "train"
    val = "val"
    test = "test"
