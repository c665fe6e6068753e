"""One entry point for both trainers: the registered model's task picks classification or segmentation."""

from __future__ import annotations

from pathlib import Path

from .registry import get_model
from .train import HParams


def run_training(hp: HParams, out: str | Path, data=None, log=print, local_workers: int | None = None) -> dict:
    """Train ``hp.model`` into ``out`` (see :func:`~edge_wbc.training.train.train`) and return its metrics.

    ``local_workers=N`` runs it as N multiworker processes on this machine (:mod:`.distributed`).
    """
    if local_workers:
        from .distributed import run_local_workers

        return run_local_workers(hp, out, local_workers, data=data, log=log)
    if get_model(hp.model).task == "segmentation":
        from .segment import train_seg

        return train_seg(hp, out, data=data, log=log)
    from .train import train

    return train(hp, out, data=data, log=log)
