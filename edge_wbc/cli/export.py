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
    paths: List[str] = typer.Argument(
        ..., metavar="MODEL", help="Model directories (model.json + <mode>.tflite), .tflite files or shipped names."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory, e.g. android_assets/."),
    mode: Optional[List[str]] = typer.Option(
        None, "--mode", help="For directories: export only these modes (repeatable)."
    ),
    eval_: bool = typer.Option(
        True,
        "--eval/--no-eval",
        help="Measure test accuracy and choose the uncertain threshold on val (needs the data).",
    ),
    uncertain_below: Optional[float] = typer.Option(
        None, "--uncertain-below", min=0.0, max=1.0,
        help="Fixed uncertain threshold instead of the model's calibrated one (or the one chosen on val).",
    ),
    threshold_old: Optional[float] = typer.Option(None, "--threshold", hidden=True, min=0.0, max=1.0),
    target_accuracy: float = typer.Option(
        EXPORT_TARGET_ACCURACY,
        min=0.5,
        max=1.0,
        help="Choose the lowest threshold at which reported val predictions reach this accuracy.",
    ),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Write <name>.tflite (with labels + normalization metadata), <name>.labels.txt and <name>.json per model.

    Classifiers and segmenters (the latter with the metadata MediaPipe Tasks' ImageSegmenter reads).

    The bundle JSON carries the model's one uncertain rule (temperature, uncertain_threshold) at its top level.
    """
    from ..assets import resolve_model
    from ..export.android import export_android
    from .app import check_out_dir, deprecated

    if threshold_old is not None:
        uncertain_below = deprecated(None, threshold_old, "--uncertain-below", "--threshold")
    check_out_dir(out)
    paths = [resolve_model(p) for p in paths]
    bad = [m for m in (mode or []) if m not in MODES]
    if bad:
        fail(f"invalid --mode {bad[0]!r}: valid choices are {', '.join(MODES)}")
    items = export_android(paths, out, mode, evaluate_data=eval_, data=data, threshold=uncertain_below,
                           target_accuracy=target_accuracy, log=say)
    render.bundles(items, out)
