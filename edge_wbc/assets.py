"""Where the shipped default models live.

A wheel installs them as ``edge_wbc/android_assets/``; a source checkout (``pip install -e .``)
has them at ``<repo>/android_assets/``. ``EDGE_WBC_MODELS`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelError

DEFAULT_CLASSIFIER = "bloodmnist_int8.tflite"


def assets_dir() -> Path:
    env = os.environ.get("EDGE_WBC_MODELS")
    if env:
        p = Path(env)
        if not p.is_dir():
            raise ModelError(f"EDGE_WBC_MODELS={env}: no such directory")
        return p
    here = Path(__file__).resolve().parent
    for cand in (here / "android_assets", here.parent / "android_assets"):
        if cand.is_dir() and any(cand.glob("*.tflite")):
            return cand
    raise ModelError("no shipped models found (edge_wbc/android_assets or the repository's android_assets/); "
                     "pass --model/--models, or set EDGE_WBC_MODELS")


def default_classifier() -> Path:
    p = assets_dir() / DEFAULT_CLASSIFIER
    if not p.is_file():
        raise ModelError(f"{p}: the default classifier is missing; pass --model")
    return p


def tensorflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def default_bench_models() -> list[Path]:
    """The shipped BloodMNIST models: the Keras float reference (only where TensorFlow is installed:
    without it the row could only fail) and every ``bloodmnist_*.tflite``."""
    d = assets_dir()
    keras = sorted(d.glob("bloodmnist*.keras")) if tensorflow_available() else []
    return keras + sorted(d.glob("bloodmnist_*.tflite"))
