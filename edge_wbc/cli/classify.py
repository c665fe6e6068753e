"""`edge-wbc classify`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import app, fail


@app.command()
def classify(
    paths: Optional[List[Path]] = typer.Argument(
        None, help="Image files and/or directories (searched recursively). None: the embedded sample's PBC cells."
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help=".tflite model (default: the shipped BloodMNIST int8)."
    ),
    labels: Optional[Path] = typer.Option(None, help="Labels file overriding model.json's labels (count must match)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="CSV to write (written atomically)."),
    threads: int = typer.Option(1, min=1),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exit 0 even if some files could not be read."),
):
    """Classify images; writes file,prediction,confidence,<one column per class>,error.

    Bad files do not stop the run: each is listed with its reason at the end and in the CSV's error
    column, and the exit code is 1 (0 with --skip-bad). Files are streamed one at a time, and -o is
    written atomically: an interrupted run leaves the old file (or none), never half a CSV.
    """
    from ..assets import default_classifier
    from ..fileio import atomic_open
    from ..preprocess import display_name
    from ..runtime import TFLiteClassifier
    from ..tasks.classify import classify_to_csv

    clf = TFLiteClassifier(model or default_classifier(), labels_file=labels, num_threads=threads)
    if not paths:
        from ..data.sample import sample_inputs

        paths, info = sample_inputs("pbc128")
        render.sample_banner(info, "classify")
    if output:
        try:
            with atomic_open(output, "w", newline="") as fh:  # the model failing mid-run keeps -o's old content
                result = classify_to_csv(clf, paths, fh)
        except OSError as e:
            fail(f"{display_name(output)}: cannot write the CSV ({e.strerror or e})")
    else:
        result = classify_to_csv(clf, paths, sys.stdout)  # stdout problems (a closed pipe) are Typer's to handle
    render.classified(result, clf, output)
    if result.n_ok == 0 and not result.bad:
        fail(f"no image files found in {', '.join(map(display_name, paths))}")
    if result.bad and not skip_bad:
        raise typer.Exit(1)
