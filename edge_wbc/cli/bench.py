"""`edge-wbc bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import DATA_HELP, app, console, fail
from .choices import SplitName


def parse_threads(s: str) -> tuple[int, ...]:
    try:
        t = tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{s!r}: expected comma-separated integers, e.g. 1,2,4") from None
    if not t or any(x < 1 for x in t):
        raise typer.BadParameter(f"{s!r}: thread counts must be >= 1")
    return t


@app.command()
def bench(
    more_models: Optional[List[str]] = typer.Argument(
        None,
        metavar="MODEL",
        show_default=False,
        help="More model dirs/files/shipped names: `-m a b c` works too.",
    ),
    models: Optional[List[str]] = typer.Option(
        None, "--model", "-m",
        help="Model dir, file or shipped name (repeatable; default: the shipped BloodMNIST models). Each "
             "classifier is benched on its own dataset, grouped by dataset; segmentation models are skipped.",
    ),
    models_old: Optional[List[str]] = typer.Option(None, "--models", hidden=True),
    dataset: Optional[str] = typer.Option(None, help="Bench every model on this dataset (default: each its own)."),
    split: SplitName = typer.Option(SplitName.test, help="Split to bench on."),
    limit: Optional[int] = typer.Option(
        None, min=1, help="Bench on a stratified random sample of N images per dataset (seeded by --seed)."
    ),
    seed: int = typer.Option(0, min=0, help="Seed of the --limit sample."),
    threads: str = typer.Option(
        "1", help="Thread counts to sweep, comma-separated, e.g. 1,2,4: one row per variant and count "
                  "(a list here only: a sweep is what bench is for; other commands take one number)."
    ),
    runs: int = typer.Option(200, min=1, help="Timed runs per variant and thread count."),
    warmup: int = typer.Option(20, min=0, help="Untimed runs before the timed ones."),
    batch: Optional[int] = typer.Option(None, min=2, help="Also measure throughput at this batch size."),
    roofline: bool = typer.Option(
        False, "--roofline", help="Measure this CPU's int8/float32 conv roof; report % of it."
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report as JSON to this file."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one line per row to this CSV file."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the table as Markdown to this file."),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Write accuracy vs latency as a PNG to this file."),
    max_drop: Optional[float] = typer.Option(None, help="Gate: max accuracy drop vs the float reference."),
    min_agreement: Optional[float] = typer.Option(None, help="Gate: min top-1 agreement with the float reference."),
    max_p50_ms: Optional[float] = typer.Option(None, help="Gate: max p50 latency (ms) of any .tflite."),
    max_size_kb: Optional[float] = typer.Option(None, help="Gate: max .tflite size (KB)."),
    compare_to: Optional[Path] = typer.Option(None, "--compare", help="Earlier --json output to compare with."),
    noise_margin: float = typer.Option(
        0.10, "--noise-margin", min=0.0, help="--compare: relative p50 rise tolerated as noise."
    ),
    clients: str = typer.Option(
        "edge-wbc", help="Who runs each .tflite: edge-wbc,mediapipe,compiled (MediaPipe Tasks ImageClassifier on "
        "the image files; LiteRT CompiledModel). Each extra row reports top-1 agreement with edge-wbc's."),
    resize: Optional[str] = typer.Option(
        None, help="Also re-run the edge-wbc row under these resize filters, e.g. bicubic,bilinear,area,nearest."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Bench every variant on real images: accuracy, agreement, latency, memory, size. Exit 1 if a gate fails."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..assets import default_bench_models, resolve_model
    from ..bench.clients import parse_clients, parse_resize
    from ..bench.runner import BenchConfig, bench_models, discover
    from .app import check_out_file, check_threads, deprecated

    th = parse_threads(threads)
    for flag, pth in (("--json", json_out), ("--csv", csv_out), ("--markdown", markdown), ("--plot", plot_out)):
        check_out_file(pth, flag)
    check_threads(max(th))
    if models_old:
        models = list(models or []) + deprecated(None, models_old, "-m/--model", "--models")
    cl = parse_clients(clients)
    rz = parse_resize(resize) if resize else ()
    baseline = None
    if compare_to:
        try:
            baseline = json.loads(compare_to.read_text())
        except (OSError, json.JSONDecodeError) as e:
            fail(f"--compare {compare_to}: cannot read bench JSON ({e})")
    given = [resolve_model(m) for m in list(models or []) + list(more_models or [])]
    paths = given if given else default_bench_models()
    found = discover(paths)
    n_var = (len(found) + sum(p.suffix == ".tflite" for p in found) * (len(cl) - 1 + len(rz))) * len(th)
    cfg = BenchConfig(threads=th, runs=runs, warmup=warmup, batch=batch, limit=limit, seed=seed, split=split.value,
                      dataset=dataset, data=str(data) if data else None, roofline=roofline,
                      clients=cl, resize=rz)
    gates = {"max_drop": max_drop, "min_agreement": min_agreement, "max_p50_ms": max_p50_ms, "max_size_kb": max_size_kb}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as prog:
        task = prog.add_task("bench", total=n_var)
        first = [True]

        def step(desc):
            if not first[0]:
                prog.advance(task)
            first[0] = False
            prog.update(task, description=desc)

        report = bench_models(paths, cfg, baseline=baseline, noise=noise_margin, gates=gates, json_out=json_out,
                              csv_out=csv_out, markdown=markdown, plot_out=plot_out, progress=step)
        prog.advance(task)
    render.bench_report(report)
    if report["gate_failures"]:
        render.gate_failures(report["gate_failures"])
        raise typer.Exit(1)
