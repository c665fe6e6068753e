"""`edge-wbc inspect`: per-layer int8 error against the float sibling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import DATA_HELP, app, out_console, quiet_tf
from .choices import Clock, SplitName


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="Model dir (int8.tflite + float32.tflite/model.keras) or an int8 .tflite."),
    float_model: Optional[Path] = typer.Option(
        None, "--float", help="Float sibling (.tflite or .keras); default: found beside the int8 file."
    ),
    n: int = typer.Option(64, "-n", min=1, help="Real images to run (from the model's dataset)."),
    split: SplitName = typer.Option(SplitName.val),
    images_dir: Optional[Path] = typer.Option(
        None, "--images", help="Run on the first -n image files of this folder (sorted; resized as the model's "
        "spec says) instead of the model's dataset: your own images, or a model whose dataset is not loadable."),
    top: int = typer.Option(0, min=0, help="Show only the N worst layers (0: all)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report (per-layer sqnr_db ...) as JSON."),
    plot_out: Optional[Path] = typer.Option(
        None, "--plot", help="PNG of SQNR by depth (with --time: and a stacked bar of the per-op time)."),
    time_: bool = typer.Option(False, "--time", help="Also time each op of the int8 model alone (p50, share, MACs)."),
    runs: int = typer.Option(200, min=1, help="--time: timed runs per op and for the whole model."),
    clock: Clock = typer.Option(Clock.wall, help="--time: wall time, or this thread's CPU time (leaves out time "
                                "another process held the core)."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Per-layer int8 error (SQNR dB, cosine, max error in int8 steps, clipped share), worst first."""
    quiet_tf()
    from rich.table import Table

    from ..bench.layers import inspect_model, plot_sqnr
    from ..fileio import atomic_write_text

    rep = inspect_model(model, float_path=float_model, n=n, split=split.value, data=str(data) if data else None,
                        images_dir=images_dir)
    t = Table(title=f"{Path(rep['model']).name} vs {rep['float_how']}; {rep['images']}")
    for c in ("depth", "layer", "op", "SQNR dB", "cosine", "max err (steps)", "clipped %"):
        t.add_column(c, justify="left" if c in ("layer", "op") else "right")
    rows = rep["layers"][:top] if top else rep["layers"]
    for r in rows:
        t.add_row(str(r["depth"]), r["layer"], r["op"], f"{r['sqnr_db']:.1f}", f"{r['cosine']:.5f}",
                  f"{r['max_abs_err_steps']:.1f}", f"{100 * r['clipped_share']:.2f}")
    out_console.print(t)
    if time_:
        from ..bench.layertime import layer_times

        rep["time"] = tm = layer_times(Path(rep["model"]).read_bytes(), runs=runs, clock=clock.value)
        t2 = Table(title=f"per-op p50 (1 thread, {runs} runs, {clock.value} clock): sum {tm['sum_ms']:.4f} ms vs whole "
                         f"{tm['whole_ms']:.4f} ms ({100 * tm['sum_vs_whole']:+.1f} %)")
        for c in ("op#", "op", "p50 ms", "share %", "MMAC"):
            t2.add_column(c, justify="left" if c == "op" else "right")
        for r in tm["layers"]:
            t2.add_row(str(r["index"]), r["op"], f"{r['p50_ms']:.4f}", f"{100 * (r['share'] or 0):.1f}",
                       f"{r['macs'] / 1e6:.2f}")
        out_console.print(t2)
    if json_out:
        atomic_write_text(json_out, json.dumps(rep, indent=2) + "\n")
    if plot_out:
        plot_sqnr(rep, plot_out)
