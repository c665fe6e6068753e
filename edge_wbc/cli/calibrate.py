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
    model: str = typer.Argument(..., metavar="MODEL",
                                help="Classifier .tflite or shipped name; its rule is stored in its <stem>.json."),
    target: float = typer.Option(
        CALIBRATE_TARGET, min=0.0, max=1.0, help="Accuracy wanted on the val crops that are not 'uncertain'."
    ),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Fit temperature scaling and the 'uncertain' threshold of a classifier on its val split.

    Only the rule's own fields change, inside the JSON beside the model (an Android bundle keeps its
    format, sha256, labels_file ...), atomically; classify, count, bench and the device read them there.
    """
    from ..assets import resolve_model
    from ..tasks.calibrate import calibrate_classifier

    render.calibrated(calibrate_classifier(resolve_model(model), target, data))
