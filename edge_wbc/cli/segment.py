"""`edge-wbc segment`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..defaults import MASK_THRESHOLD, SPECK_FRAC
from . import render
from .app import app, check_inputs, check_out_dir, check_threads, fail


def default_asset(name: str) -> Path:
    from ..assets import assets_dir

    p = assets_dir() / name
    if not p.is_file():
        fail(f"{p}: shipped model missing; pass it explicitly")
    return p


def model_or_default(model: str | None, default: str) -> Path:
    """A -m value (a path or a shipped name, :func:`edge_wbc.assets.resolve_model`), or the shipped default."""
    from ..assets import resolve_model

    return resolve_model(model) if model else default_asset(default)


@app.command()
def segment(
    images: Optional[List[Path]] = typer.Argument(
        None, metavar="[IMAGE]...",
        help="Image files and/or directories. None: one PBC cell per class from the embedded sample.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory for <stem>.mask.png, <stem>.nucleus.png, <stem>.overlay.png."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Segmentation .tflite or shipped name (default: wbc_unet_int8)."
    ),
    mask_threshold: float = typer.Option(MASK_THRESHOLD, "--mask-threshold", min=0.0, max=1.0,
                                         help="Probability above which a map pixel is WBC / nucleus."),
    threshold_old: Optional[float] = typer.Option(None, "--threshold", hidden=True, min=0.0, max=1.0),
    tile: Optional[bool] = typer.Option(
        None,
        "--tile/--no-tile",
        help="Expert override of the default (each image brought to the model's training scale, from its red "
        "cells or --um-per-px; single-cell crops resized whole). --tile: windows of the model's input size (or "
        "--window) at native scale; --no-tile: the whole image resized to the model's input.",
    ),
    um_per_px: Optional[float] = typer.Option(
        None, "--um-per-px", help="The images' scale in µm per pixel (0.02-5); default: estimated from the red cells."
    ),
    window: Optional[int] = typer.Option(
        None,
        min=8,
        help="With --tile: window size in image pixels, e.g. the training "
        "patches' size in your images' magnification (default: the model's input size).",
    ),
    min_area_frac: float = typer.Option(
        SPECK_FRAC,
        min=0.0,
        max=1.0,
        help="Drop WBC components smaller than this fraction of the "
        "model's input area, at the model's scale (specks: platelets, debris).",
    ),
    threads: int = typer.Option(1, min=1, help="Interpreter threads."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exit 0 even if some files could not be read."),
):
    """WBC (and nucleus) masks at each input's own size, plus an overlay."""
    from ..runtime import TFLiteSegmenter
    from ..tasks.scale import check_um_per_px
    from ..tasks.segment import segment_paths

    if threshold_old is not None:
        from .app import deprecated

        mask_threshold = deprecated(None, threshold_old, "--mask-threshold", "--threshold")
    if um_per_px is not None:
        check_um_per_px(um_per_px)
    if window is not None and not tile:
        fail(f"--window {window} applies with --tile only: add --tile, or leave --window out")
    check_out_dir(out)
    check_threads(threads)
    if images:
        check_inputs(images)
    seg = TFLiteSegmenter(model_or_default(model, "wbc_unet_int8.tflite"), num_threads=threads)
    if not images:
        from ..data.sample import sample_inputs

        images, info = sample_inputs("pbc128", per_class=1)
        render.sample_banner(info, "segment")
    result = segment_paths(seg, images, out, mask_threshold, tile, min_area_frac, window, um_per_px)
    render.segmented(result, seg, tile, window, out)
    if result.bad and not skip_bad:
        raise typer.Exit(1)
