"""`edge-wbc models`: the shipped models (what to pass to -m) and the registered architectures (what to train)."""

from __future__ import annotations

from . import render
from .app import app


@app.command("models")
def list_models():
    """List the shipped models (name for -m, task, input, classes, trained on, test score) and the
    registered architectures (for `edge-wbc train`)."""
    from ..assets import shipped_models
    from ..data.catalog import CATALOG

    rows = shipped_models()
    for r in rows:
        info = CATALOG.get(r["dataset"])
        r["trained_on"] = f"{r['dataset']}: {info.description}" if info else r["dataset"]
    render.shipped_list(rows)
    try:
        from ..training import MODELS
    except ImportError as e:
        render.note(f"registered architectures: need the train extra ({e})")
        return
    render.model_list(MODELS.values())
