"""Model registry (a leaf: it imports no builder): ``@register_model("name")`` on ``f(spec, **kw) -> keras.Model``.

The builders live in :mod:`edge_wbc.training.models`, which registers them when imported;
``edge_wbc.training`` imports it, so every lookup through the package sees them all. Builders import
Keras lazily, so the registry is importable without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import SpecError


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
        MODELS[name] = ModelEntry(
            name, fn, task, description or (fn.__doc__ or "").strip().splitlines()[0], default_size
        )
        return fn

    return deco


def list_models(task: str | None = None) -> list[str]:
    return [n for n, e in MODELS.items() if task is None or e.task == task]


def get_model(name: str) -> ModelEntry:
    if name not in MODELS:
        raise SpecError(f"unknown model {name!r}: valid choices are {', '.join(MODELS)}")
    return MODELS[name]


def builder_kwargs(name: str) -> dict:
    """The keyword arguments a registered builder takes beyond (spec, K), with their defaults."""
    import inspect

    params = inspect.signature(get_model(name).builder).parameters
    return {k: p.default for k, p in params.items() if k not in ("spec", "K")}


def check_kwargs(name: str, kw: dict) -> None:
    valid = builder_kwargs(name)
    bad = sorted(set(kw) - set(valid))
    if bad:
        choices = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none"
        raise SpecError(f"invalid argument {bad[0]!r} for model {name!r}: valid choices are {choices}")


def build_model(name: str, spec, K=None, **kw):
    """Build a registered architecture; ``K`` is the Keras module (Keras 3 by default, or tf_keras)."""
    check_kwargs(name, kw)
    return get_model(name).builder(spec, K=K, **kw)
