"""`edge-wbc models`."""

from __future__ import annotations

from . import render
from .app import app, fail


@app.command("models")
def list_models():
    """List the registered model architectures."""
    try:
        from ..training import MODELS
    except ImportError as e:
        fail(f"needs the train extra ({e})")
    render.model_list(MODELS.values())
