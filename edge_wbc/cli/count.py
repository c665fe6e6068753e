"""`edge-wbc count`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..assets import detector_for_mode
from . import render
from .app import app, check_inputs, check_out_dir, check_out_file, check_threads, fail
from .segment import model_or_default


@app.command()
def count(
    smears: Optional[List[Path]] = typer.Argument(
        None, metavar="[SMEAR]...",
        help="Smear images and/or directories. None: the embedded sample's BCCD test smears.",
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for annotated smears (<stem>.count.jpg)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report (every cell) as JSON to this file."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one row per smear (counts) to this file."),
    report_html: Optional[Path] = typer.Option(
        None, "--report", help="One self-contained HTML page (annotated fields, differential chart, models)."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="WBC crop classifier: .tflite or shipped name (default: wbc_field_int8).",
    ),
    classifier_old: Optional[str] = typer.Option(None, "--classifier", hidden=True, help="Deprecated: --model."),
    detector: Optional[str] = typer.Option(
        None,
        help="WBC detector: .tflite or shipped name (default: wbc_det_int8, the multi-source field detector, with "
        "its 128 px window wbc_det128_int8 for a field that fits one; a --detector given runs that model alone; with "
        "--tile wbc_unet_int8; --no-tile takes smear_unet_int8), or 'nuclei': the rule-based stained-nucleus "
        "detector alone (no model; a single-cell crop still goes to the cell segmenter).",
    ),
    nuclei: Optional[bool] = typer.Option(
        None, "--nuclei/--no-nuclei",
        help="With the field detector: also count the stained nuclei it missed (default); --no-nuclei: the model "
        "alone.",
    ),
    uncertain_below: Optional[float] = typer.Option(
        None, min=0.0, max=1.0, help="Override the classifier's calibrated uncertain threshold."
    ),
    tile: Optional[bool] = typer.Option(
        None,
        "--tile/--no-tile",
        help="Expert override of the default (every field brought to the detector's scale, from its red cells "
        "or --um-per-px). --tile: the cell segmenter in windows at native scale (fields at the magnification "
        "of its training patches); --no-tile: the whole field resized to the BCCD smear detector's input.",
    ),
    um_per_px: Optional[float] = typer.Option(
        None, "--um-per-px", help="The images' scale in µm per pixel (0.02-5); default: estimated from the red cells."
    ),
    window: Optional[int] = typer.Option(
        None, min=8, help="With --tile: window size in image pixels (default: the detector's input size)."
    ),
    threads: int = typer.Option(1, min=1, help="Interpreter threads."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exit 0 even if some files could not be read."),
):
    """Find every WBC on smear images, classify each, report counts and percentages per subtype."""
    from ..assets import DEFAULT_CLASSIFIER, SMALL_FIELD_DETECTOR
    from ..errors import ModelError
    from ..preprocess import display_name
    from ..runtime.nuclei import NUCLEI_DETECTOR
    from ..tasks.count import SmearCounter, count_paths
    from ..tasks.scale import check_um_per_px
    from .app import deprecated

    if classifier_old is not None:
        if model is not None:
            fail(f"--model {model} and --classifier {classifier_old}: give one (--classifier is the old name)")
        model = deprecated(None, classifier_old, "--model", "--classifier")
    if um_per_px is not None:
        check_um_per_px(um_per_px)
    if window is not None and not tile:
        fail(f"--window {window} applies with --tile only: add --tile, or leave --window out")
    check_out_dir(out)
    check_out_file(json_out, "--json")
    check_out_file(csv_out, "--csv")
    check_out_file(report_html, "--report")
    check_threads(threads)
    if smears:
        check_inputs(smears)
    if detector == NUCLEI_DETECTOR and tile is not None:
        fail(f"--detector {NUCLEI_DETECTOR} works at the models' training scale only: leave out --tile / --no-tile")
    if detector == NUCLEI_DETECTOR and nuclei is False:
        fail(f"--no-nuclei with --detector {NUCLEI_DETECTOR} leaves no detector: leave out --no-nuclei, or pick a "
             "model with --detector")
    if nuclei is not None and tile is not None:
        fail(f"--{'' if nuclei else 'no-'}nuclei applies to the default field detector only (--tile / --no-tile "
             "never add stained nuclei): leave it out")
    if detector == NUCLEI_DETECTOR:
        det = NUCLEI_DETECTOR
    else:
        try:
            det = model_or_default(detector, detector_for_mode(tile))
        except ModelError as e:  # the one detector that is not a model file is a valid choice too
            raise ModelError(f"--detector {e}; or '{NUCLEI_DETECTOR}', the rule-based stained-nucleus detector") from e
    sc = SmearCounter(
        det,
        model_or_default(model, DEFAULT_CLASSIFIER),
        threads=threads,
        uncertain_below=uncertain_below,
        tile=tile,
        window=window,
        um_per_px=um_per_px,
        nuclei=nuclei is not False,
        cell_model=model_or_default(None, "wbc_unet_int8.tflite") if tile is None else None,
        small_detector=model_or_default(None, SMALL_FIELD_DETECTOR) if detector is None and tile is None else None,
    )
    if nuclei and not (sc.add_nuclei or sc.nuclei):
        fail(f"--nuclei: --detector {detector} is not the multi-source field detector, which "
             "alone adds stained nuclei: leave out --nuclei, or leave out --detector")
    source = None
    if not smears:
        from ..data.sample import sample_inputs

        smears, info = sample_inputs("bccd_smear")
        render.sample_banner(info, "count")
        source = f"embedded sample: {info['source']} ({info['license']}; {info['credit']})"
    result = count_paths(sc, smears, out, json_out, csv_out, report_images=report_html is not None)
    render.counted(result, sc.clf.labels)
    if report_html is not None:
        from ..tasks.count import write_report

        written = ", ".join(f"--{k} {display_name(v)}" for k, v in (("json", json_out), ("csv", csv_out)) if v)
        try:
            write_report(sc, result, report_html, source)
        except OSError as e:
            fail(f"--report {display_name(report_html)}: cannot write the HTML report ({e.strerror or e})"
                 + (f"; {written} written" if written else ""))
        render.reported(report_html)
    if result.bad and not skip_bad:
        raise typer.Exit(1)
