"""`edge-wbc calibrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..defaults import CALIBRATE_TARGET
from . import render
from .app import DATA_HELP, app


@app.command()
def calibrate(
    model: Path = typer.Argument(..., help="Classifier .tflite; its <stem>.json gets temperature and uncertain_below."),
    target: float = typer.Option(
        CALIBRATE_TARGET, min=0.0, max=1.0, help="Accuracy wanted on the val crops that are not 'uncertain'."
    ),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Fit temperature scaling and the 'uncertain' threshold of a classifier on its val split."""
    from ..tasks.calibrate import calibrate_classifier

    render.calibrated(calibrate_classifier(model, target, data))
