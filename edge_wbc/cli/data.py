"""`edge-wbc data info | fetch | check`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import DATA_HELP, console, data_app, out_console


@data_app.command("info")
def data_info(data: Optional[Path] = typer.Option(None, help=DATA_HELP)):
    """Show where data is looked for and what is found there."""
    from ..data import ENV_VAR, data_root, data_sources, describe

    root = data_root(data)
    render.data_info(root, data_sources(data), describe(root), ENV_VAR)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset to download: bloodmnist."),
    data: Optional[Path] = typer.Option(None, help="Download into this root instead of the user cache dir."),
    url: Optional[str] = typer.Option(None, help="Alternative URL (a mirror); the md5 is still checked."),
):
    """Download a dataset (with its md5 check) into the user cache dir."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from ..data import fetch

    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True
    ) as prog:
        task = prog.add_task(f"fetch {name}", total=None)

        def cb(n, total):
            prog.update(task, advance=n, total=total or None)

        path = fetch(name, Path(data) if data else None, url=url, progress=cb)
    out_console.print(f"{name}: {path} (md5 ok)")


@data_app.command("check")
def data_check(
    dataset: str = typer.Argument(..., help="bloodmnist, pbc128, bccd4, bccd2, or a folder path."),
    size: int = typer.Option(28, help="Size the images are loaded at."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
    max_distance: int = typer.Option(
        4, "--max-distance", min=0, help="Max Hamming distance of 64-bit perceptual hashes to call a near-duplicate."
    ),
    threshold_old: Optional[int] = typer.Option(None, "--threshold", hidden=True, min=0),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the counts and pairs as JSON to this file."),
):
    """Class counts per split and near-duplicate images across splits (perceptual hash)."""
    from ..data.dupes import check_dataset
    from .app import check_out_file, deprecated

    if threshold_old is not None:
        max_distance = deprecated(None, threshold_old, "--max-distance", "--threshold")
    check_out_file(json_out, "--json")
    threshold = max_distance

    render.data_check(check_dataset(dataset, size, data, threshold, json_out))


@data_app.command("sample")
def data_sample(out: Path = typer.Option(..., "--out", "-o", help="New or empty directory to copy the sample into.")):
    """Copy the embedded sample (test-split images of PBC, BCCD, smartphone_pig; MANIFEST.json, CREDITS.md) out."""
    from ..data.sample import copy_sample, manifest

    dest, n = copy_sample(out)
    sets = manifest()["sets"]
    for name, s in sets.items():
        out_console.print(f"{name}: {s['n']} images ({s['source']}; {s['license']})", highlight=False)
    out_console.print(f"{n} files -> {dest} (credits: {dest / 'CREDITS.md'})", highlight=False)


@data_app.command("pack")
def data_pack(
    datasets: List[str] = typer.Argument(..., help="Dataset(s) to pack: bloodmnist, pbc128, bccd4, a folder; "
                                                   "several sources must share their labels."),
    out: Path = typer.Option(..., "--out", "-o", help="Pack directory (TFRecord shards + manifest.json)."),
    shards: int = typer.Option(8, min=1, help="Shards per split and source (>= the number of workers)."),
    size: Optional[int] = typer.Option(None, help="Image size in pixels (default: the dataset's)."),
    repeat: int = typer.Option(1, min=1, help="Write train this many times (copies 2.. randomly augmented)."),
    seed: int = typer.Option(0, min=0, help="Split seed (as `train --seed`) and shard shuffle."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Write datasets as TFRecord shards with a manifest (counts, sha256s) for streaming training."""
    from ..data.pack import write_pack

    m = write_pack(list(datasets), out, size=size, shards=shards, repeat=repeat, seed=seed, data=data,
                   log=lambda s: console.print(s, highlight=False))
    total = sum(v["n"] for v in m["splits"].values())
    out_console.print(f"{out}: {total:,} images in {len(m['shards'])} shards, manifest {out / 'manifest.json'}")
