"""Model registry: ``@register_model("name")`` on a builder ``f(spec, **kw) -> keras.Model``.

Builders import Keras lazily, so the registry itself is importable without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edge_wbc.errors import SpecError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    task: str  # "classification" | "binary" | "segmentation"
    description: str
    default_size: int


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, task: str = "classification", description: str = "", default_size: int = 28):
    def deco(fn: Callable) -> Callable:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelEntry(name, fn, task, description or (fn.__doc__ or "").strip().splitlines()[0], default_size)
        return fn

    return deco


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (registers the builders)


def list_models(task: str | None = None) -> list[str]:
    _ensure_loaded()
    return [n for n, e in MODELS.items() if task is None or e.task == task]


def get_model(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in MODELS:
        raise SpecError(f"unknown model {name!r}: valid choices are {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, spec, **kw):
    return get_model(name).builder(spec, **kw)
