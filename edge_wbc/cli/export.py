"""`edge-wbc export-android`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..defaults import EXPORT_TARGET_ACCURACY
from ..spec import MODES
from . import render
from .app import DATA_HELP, app, fail, say


@app.command("export-android")
def export_android_cmd(
    paths: List[Path] = typer.Argument(
        ..., help="Model directories (model.json + <mode>.tflite) and/or .tflite files."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory, e.g. android_assets/."),
    mode: Optional[List[str]] = typer.Option(
        None, "--mode", "-m", help="For directories: export only these modes (repeatable)."
    ),
    eval_: bool = typer.Option(
        True,
        "--eval/--no-eval",
        help="Measure test accuracy and choose the uncertain threshold on val (needs the data).",
    ),
    threshold: Optional[float] = typer.Option(
        None, min=0.0, max=1.0, help="Fixed uncertain threshold instead of the one chosen on val."
    ),
    target_accuracy: float = typer.Option(
        EXPORT_TARGET_ACCURACY,
        min=0.5,
        max=1.0,
        help="Choose the lowest threshold at which reported val predictions reach this accuracy.",
    ),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Write <name>.tflite (with labels + normalization metadata), <name>.labels.txt and <name>.json per model."""
    from ..export.android import export_android

    bad = [m for m in (mode or []) if m not in MODES]
    if bad:
        fail(f"invalid --mode {bad[0]!r}: valid choices are {', '.join(MODES)}")
    items = export_android(paths, out, mode, evaluate_data=eval_, data=data, threshold=threshold,
                           target_accuracy=target_accuracy, log=say)
    render.bundles(items, out)
