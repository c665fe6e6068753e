"""One entry point for both trainers: the registered model's task picks classification or segmentation."""

from __future__ import annotations

from pathlib import Path

from .registry import get_model
from .train import HParams


def run_training(hp: HParams, out: str | Path, data=None, log=print) -> dict:
    """Train ``hp.model`` into ``out`` (see :func:`~edge_wbc.training.train.train`) and return its metrics."""
    if get_model(hp.model).task == "segmentation":
        from .segment import train_seg

        return train_seg(hp, out, data=data, log=log)
    from .train import train

    return train(hp, out, data=data, log=log)
