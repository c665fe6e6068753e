"""`edge-wbc loso` and `edge-wbc adapt`: the field classifier across microscopes."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .app import DATA_HELP, app, fail, out_console, quiet_tf, say


def _tf():
    quiet_tf()
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as e:
        fail(f"this command needs the train extra ({e}): pip install 'edge-wbc[train]'")


@app.command()
def loso(
    sources: str = typer.Option("pbc128,bccd,wbcseg", help="Comma-separated cell sources (named or folder paths)."),
    out: Path = typer.Option(..., "--out", help="Folder for loso.json, loso.md and one run per held-out source."),
    model: str = typer.Option("fieldnet", help="Registered classifier (see `edge-wbc models`)."),
    epochs: int = typer.Option(14, min=1),
    steps: int = typer.Option(120, min=1, help="Batches per epoch."),
    size: int = typer.Option(64, min=16, max=256),
    seed: int = typer.Option(0, min=0),
    limit: Optional[int] = typer.Option(None, min=1, help="At most N train/val images per source (smoke runs)."),
    shots: str = typer.Option("10,25,50", help="Labelled cells of the held-out source for few-shot adaptation."),
    label_map: Optional[List[str]] = typer.Option(None, "--label-map", help="Folder class OLD=NEW (repeatable)."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Leave-one-source-out: train on all sources but one, test on all of it; float, int8, abstention, adaptation."""
    from ..data.cells import parse_label_map

    src = [s for s in sources.split(",") if s]
    if len(src) < 2:
        fail(f"--sources {sources!r}: leave-one-source-out needs at least two sources")
    try:
        k = tuple(int(v) for v in shots.split(",") if v)
    except ValueError:
        fail(f"invalid --shots {shots!r}: expected comma-separated integers, e.g. 10,25,50")
    lm = parse_label_map(label_map)
    _tf()
    from ..training.field import FieldHParams
    from ..training.loso import run_loso

    hp = FieldHParams(sources=tuple(src), model=model, epochs=epochs, steps=steps, size=size, seed=seed, limit=limit,
                      label_map=lm)
    result = run_loso(src, out, hp, data=data, log=say, shots=k)
    out_console.print((out / "loso.md").read_text(encoding="utf-8"), markup=False, highlight=False)
    say(f"mean int8 top-1 over held-out sources: {result['mean_int8_top1']:.4f}; wrote {out / 'loso.json'}")


class AdaptMethod(str, Enum):
    adabn = "adabn"
    features = "features"


@app.command()
def adapt(
    model: str = typer.Argument(..., help="A field model: a training run dir or a shipped name (wbc_field)."),
    images: Path = typer.Option(..., "--images", help="Folder of the user's cell images (>= 20)."),
    out: Path = typer.Option(..., "--out", help="New bundle folder (must not exist or be empty)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV file,label of a few labelled cells (few-shot)."),
    method: AdaptMethod = typer.Option(AdaptMethod.adabn, "--method",
                                       help="adabn: every BatchNorm layer (needs the train extra and the Keras "
                                            "model); features: the features output of a bundle converted with "
                                            "--ood (runtime only, no TensorFlow)."),
    shift: Optional[str] = typer.Option(None, "--shift", help="--method features: how the shift is estimated: "
                                        "mean (default; the cells must be a natural mix, e.g. every WBC of "
                                        "whole smears) or em (follows the cells' own class mix)."),
    seed: int = typer.Option(0, min=0),
):
    """Adapt a field model to your microscope: AdaBN on your images (+ few-shot head training), int8 bundle;
    or, with --method features, shift the features of the int8 bundle itself (no TensorFlow)."""
    if not images.is_dir():
        fail(f"--images {images}: no such directory")
    if labels is not None and not labels.is_file():
        fail(f"--labels {labels}: no such file")
    if method == AdaptMethod.features:
        if labels is not None:
            fail("--labels (few-shot) needs --method adabn")
        from ..defaults import ADAPT_SHIFT
        from ..runtime.ood import SHIFT_KINDS

        if shift is not None and shift not in SHIFT_KINDS:
            fail(f"--shift {shift!r}: valid choices are {', '.join(SHIFT_KINDS)}")
        from ..assets import resolve_model
        from ..tasks.adapt import adapt_features

        src = resolve_model("wbc_field_int8" if model == "wbc_field" else model)
        r = adapt_features(src, images, out, log=say, shift_kind=shift or ADAPT_SHIFT)
        how = ("their mean onto the training mean" if r["shift"] == "mean"
               else "onto the training class means in their estimated class mix (em)")
        say(f"wrote {r['out']} (+ .json): the features of {r['images']} cells shifted, {how}")
        return
    if shift is not None:
        fail("--shift needs --method features")
    _tf()
    from ..training.adapt import adapt_bundle

    r = adapt_bundle(model, images, out, labels_csv=labels, log=say, seed=seed)
    say(f"wrote {r['out']}/int8.tflite (+ int8.json, model.keras, labels.txt, adapt.json): AdaBN on "
        f"{r['unlabelled_images']} images, {r['labelled_cells']} labelled; int8/float agreement {r['agreement']}")
