"""`edge-wbc classify`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import app, check_inputs, check_out_file, check_threads, deprecated, fail, say


@app.command()
def classify(
    paths: Optional[List[Path]] = typer.Argument(
        None, metavar="[PATH]...",
        help="Image files and/or directories (searched recursively). None: the embedded sample's PBC cells.",
    ),
    model: Optional[str] = typer.Option(
        None, "--model", "-m",
        help="Classifier: a .tflite path or a shipped name, e.g. bccd4_int8 (default: wbc_field_int8, the field model; "
             "`edge-wbc models` lists them).",
    ),
    labels: Optional[Path] = typer.Option(None, help="Labels file overriding model.json's labels (count must match)."),
    csv_out: Optional[Path] = typer.Option(
        None, "--csv", help="Write the CSV to this file (atomically) instead of stdout."
    ),
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Also write the results as JSON (model, rule, one entry per file), atomically."
    ),
    output: Optional[Path] = typer.Option(None, "--output", hidden=True, help="Deprecated: --csv."),
    threads: int = typer.Option(1, min=1, help="Interpreter threads."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exit 0 even if some files could not be read."),
    no_abstain: bool = typer.Option(
        False, "--no-abstain", help="The raw argmax: no quality checks, no uncertain rule, no flags."
    ),
):
    """Classify images: a CSV file,prediction,confidence,<one column per class>,flag,error on stdout (or --csv FILE).

    flag names why a cell was left 'uncertain' (several joined by |): too_small, grayscale, exposure,
    blur, noise, no_wbc, not_a_single_cell, ood, low_confidence. Any flag makes prediction 'uncertain'.

    prediction is 'uncertain' when the calibrated top probability is below the model's uncertain
    threshold (its one rule: temperature + threshold in the model's JSON); confidence and the class
    columns are the calibrated probabilities. Bad files do not stop the run: each is listed with its
    reason at the end and in the CSV's error column, and the exit code is 1 (0 with --skip-bad).
    Files are streamed one at a time, and --csv is written atomically: an interrupted run leaves the
    old file (or none), never half a CSV.
    """
    from ..assets import default_classifier, resolve_model, shipped_models
    from ..data import iter_inputs
    from ..fileio import atomic_open
    from ..preprocess import display_name
    from ..runtime import TFLiteClassifier
    from ..tasks.classify import classify_to_csv, write_json
    from ..tasks.hints import image_stats, input_hint

    if output is not None:
        csv_out = csv_out or deprecated(None, output, "--csv", "--output")
    check_out_file(csv_out, "--csv")
    check_out_file(json_out, "--json")
    check_threads(threads)
    model_path = resolve_model(model) if model else default_classifier()
    if not paths:
        from ..data.sample import sample_inputs

        paths, info = sample_inputs("pbc128")
        render.sample_banner(info, "classify")
    check_inputs(paths)
    clf = TFLiteClassifier(model_path, labels_file=labels, num_threads=threads)
    hint = input_hint(clf.spec, image_stats(iter_inputs(paths, onerror=lambda d, e: None)), clf.path.stem,
                      shipped_models())
    if hint:
        say(f"[yellow]{hint}[/]")
    off = None if no_abstain else clf.ood_off_reason()
    if off:
        say(f"[yellow]note: OOD checks are off for {clf.path.stem}: {off}[/]")
    entries: list | None = [] if json_out else None
    if csv_out:
        try:
            with atomic_open(csv_out, "w", newline="") as fh:  # the model failing mid-run keeps the old content
                result = classify_to_csv(clf, paths, fh, entries, abstain=not no_abstain)
        except OSError as e:
            fail(f"{display_name(csv_out)}: cannot write the CSV ({e.strerror or e})")
    else:
        # stdout problems (a closed pipe) are Typer's
        result = classify_to_csv(clf, paths, sys.stdout, entries, abstain=not no_abstain)
    if json_out:
        write_json(json_out, clf, result, entries)
    render.classified(result, clf, csv_out, json_out)
    note = None if no_abstain else result.batch_note(clf)
    if note:
        say(f"[yellow]note: {note}[/]")
    if result.n_ok == 0 and not result.bad:
        fail(f"no image files found in {', '.join(map(display_name, paths))}")
    if result.bad and not skip_bad:
        raise typer.Exit(1)
