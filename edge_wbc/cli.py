"""The `edge-wbc` command line (Typer). Training and conversion import TensorFlow lazily."""

from __future__ import annotations

import csv
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import DataError, EdgeWBCError, ImageError, ModelError, SpecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="White-blood-cell models from training to the device: train, convert, classify, bench.")
data_app = typer.Typer(no_args_is_help=True, help="Find, fetch and inspect datasets.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)
# Tables are wide: when stdout is not a terminal (CI logs, pipes) do not fold them to 80 columns.
out_console = Console() if sys.stdout.isatty() else Console(width=200)

DATA_HELP = "Data root (else $EDGE_WBC_DATA, else the user cache dir that `edge-wbc data fetch` fills)."


class Mode(str, Enum):
    float32 = "float32"
    float16 = "float16"
    dynamic = "dynamic"
    int8 = "int8"
    int16x8 = "int16x8"
    qat = "qat"
    pruned = "pruned"
    clustered = "clustered"


class IOType(str, Enum):
    uint8 = "uint8"
    int8 = "int8"
    float32 = "float32"


class Optimizer(str, Enum):
    adam = "adam"
    adadelta = "adadelta"
    sgd = "sgd"


class ClassWeights(str, Enum):
    balanced = "balanced"


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


def fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ---- train / convert --------------------------------------------------------------------------
def _parse_args(items: list[str]) -> dict:
    """--arg KEY=VALUE pairs -> builder kwargs; VALUE is JSON (12, 0.2, [32,64]) or else a string."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"invalid --arg {item!r}: expected KEY=VALUE, e.g. --arg base=12")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@app.command()
def train(
    model: str = typer.Argument(..., help="Registered model name (see `edge-wbc models`)."),
    dataset: str = typer.Option("bloodmnist", help="bloodmnist, pbc128, bccd4, bccd2, a folder path; unet: seg, wbcseg, sigtuple, bccd_smear."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for model.keras, model.json, curves ..."),
    size: Optional[int] = typer.Option(None, help="Input size in pixels (default: the dataset's)."),
    epochs: int = typer.Option(30, min=1),
    batch: int = typer.Option(64, min=1),
    optimizer: Optimizer = typer.Option(Optimizer.adam),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default per optimizer)."),
    class_weights: Optional[ClassWeights] = typer.Option(None, "--class-weights"),
    seed: int = typer.Option(0, min=0),
    patience: int = typer.Option(8, min=1, help="Early-stopping patience on val accuracy."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use only N images per split (smoke runs)."),
    jitter: float = typer.Option(0.0, min=0.0, max=1.0, help="Photometric augmentation strength (brightness, contrast, saturation, hue); 0 = off."),
    ema: float = typer.Option(0.0, help="EMA momentum of the weights (e.g. 0.99), used for val, checkpoints and the saved model; 0 = off."),
    boundary_weight: float = typer.Option(0.0, "--boundary-weight", min=0.0, help="unet: extra cross-entropy weight on pixels within 2 px of a mask boundary; 0 = off."),
    refit: bool = typer.Option(False, "--refit", help="unet: train on train + val for exactly --epochs and keep the last epoch (after choosing the recipe on val)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this model dir's weights (same-named layers of the same shape; transfer learning)."),
    arg: Optional[List[str]] = typer.Option(None, "--arg", help="Builder argument KEY=VALUE (JSON value), e.g. --arg base=12; repeatable; saved in model.json."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Train a registered model; writes model.keras, model.json, history.csv, curves.png, metrics.json."""
    _quiet_tf()
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        from .training.train import HParams, train as run
    except ImportError as e:
        fail(f"training needs the train extra ({e}): pip install 'edge-wbc[train]'")
    try:
        hp = HParams(model=model, dataset=dataset, size=size, epochs=epochs, batch=batch, optimizer=optimizer.value, lr=lr,
                     class_weights=class_weights.value if class_weights else None, seed=seed, patience=patience, limit=limit,
                     jitter=jitter, ema=ema, boundary_weight=boundary_weight, refit=refit, model_kwargs=_parse_args(arg or []), init=str(init) if init else None)
        from .training.registry import get_model

        if get_model(model).task == "segmentation":
            from .training.segment import dice_summary, train_seg

            m = train_seg(hp, out, data=data, log=lambda s: console.print(s, highlight=False))
            out_console.print(dice_summary(m["segmentation"]) + f" -> {out}")
            return
        m = run(hp, out, data=data, log=lambda s: console.print(s, highlight=False))
    except EdgeWBCError as e:
        fail(str(e))
    out_console.print(f"test accuracy {m.get('accuracy', float('nan')):.4f}, macro-F1 {m.get('macro_f1', float('nan')):.4f} -> {out}")


@app.command()
def convert(
    model_dir: Path = typer.Argument(..., help="Directory with model.keras and model.json."),
    mode: Mode = typer.Option(Mode.int8, "--mode", "-m"),
    calib: int = typer.Option(500, min=1, help="Calibration images for int8 / int16x8."),
    calib_split: Split = typer.Option(Split.train, help="Split to calibrate on (never test)."),
    io: IOType = typer.Option(IOType.uint8, "--io", help="int8 mode: input/output tensor type."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="Per-tensor weight quantization (integer-only accelerators)."),
    allow_float_fallback: bool = typer.Option(False, "--allow-float-fallback", help="Accept float ops left in an int8 model."),
    allow_chance: bool = typer.Option(False, "--allow-chance", help="Convert even if the model does not beat chance."),
    min_agreement: float = typer.Option(0.9, min=0.0, max=1.0, help="Refuse the result below this top-1 agreement with Keras."),
    sparsity: float = typer.Option(0.5, min=0.01, max=0.99, help="pruned: target sparsity of Conv2D/Dense kernels."),
    clusters: int = typer.Option(16, min=2, help="clustered: weight clusters per layer."),
    prune_clusters: int = typer.Option(0, "--prune-clusters", min=0, help="pruned: then cluster the kept weights into N values (0 = off)."),
    ft_epochs: Optional[int] = typer.Option(None, "--ft-epochs", min=1, help="qat/pruned/clustered: fine-tuning epochs (default: qat 8, pruned/clustered 2)."),
    ft_lr: Optional[float] = typer.Option(None, "--ft-lr", min=0.0, help="qat/pruned/clustered: fine-tuning learning rate (default: qat 1e-5, pruned/clustered 1e-4)."),
    allow_below_ptq: bool = typer.Option(False, "--allow-below-ptq", help="qat: write the model even if its val accuracy is below PTQ int8's."),
    ft_limit: Optional[int] = typer.Option(None, "--ft-limit", min=1, help="qat/pruned/clustered: fine-tune on N train images."),
    name: Optional[str] = typer.Option(None, "--name", help="Output file stem (default: the mode), e.g. int8_pertensor."),
    seed: int = typer.Option(0, min=0, help="Seed of the calibration sample and of fine-tuning (the data split stays the training one)."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Convert DIR/model.keras to DIR/<mode>.tflite (+ <mode>.json), verified before it is written."""
    _quiet_tf()
    if calib_split == Split.test:
        fail("--calib-split test is refused: calibrate on train (default) or val")
    try:
        import tensorflow  # noqa: F401

        from .converters import convert_model_dir
    except ImportError as e:
        fail(f"conversion needs the train extra ({e}): pip install 'edge-wbc[train]'")
    try:
        r = convert_model_dir(model_dir, mode.value, data=data, calib=calib, calib_split=calib_split.value, io=io.value,
                              per_tensor=per_tensor, allow_float_fallback=allow_float_fallback, allow_chance=allow_chance,
                              min_agreement=min_agreement, out_name=name, seed=seed, log=lambda s: console.print(s, highlight=False),
                              **({k: v for k, v in {"epochs": ft_epochs, "lr": ft_lr, "limit": ft_limit}.items() if v is not None}
                                 if mode in (Mode.qat, Mode.pruned, Mode.clustered) else {}),
                              **({"allow_below_ptq": allow_below_ptq} if mode == Mode.qat else {}),
                              **({"sparsity": sparsity, "prune_clusters": prune_clusters} if mode == Mode.pruned else {}),
                              **({"clusters": clusters} if mode == Mode.clustered else {}))
    except EdgeWBCError as e:
        fail(str(e))
    extra = f", float ops kept: {', '.join(r['float_ops'])}" if r["float_ops"] and mode == Mode.int8 else ""
    if r.get("per_channel_tensors") is not None and mode == Mode.int8:
        extra += f", per-channel weight tensors: {len(r['per_channel_tensors'])}"
    if r.get("clipped_share") is not None:
        extra += f", clipped activations {100 * r['clipped_share']:.3f} %"
    out_console.print(f"{r['path']}: {r['size_bytes']:,} bytes (gzip {r['gzip_bytes']:,}), I/O {r['input_dtype']}, "
                      f"agreement {r.get('agreement', float('nan')):.4f}{extra}")


@app.command("models")
def list_models():
    """List the registered model architectures."""
    try:
        from .training.registry import MODELS, list_models as names
    except ImportError as e:
        fail(f"needs the train extra ({e})")
    names()
    t = Table("name", "task", "description")
    for n, e in MODELS.items():
        t.add_row(n, e.task, e.description)
    out_console.print(t)


# ---- classify ---------------------------------------------------------------------------------
@app.command()
def classify(
    paths: List[Path] = typer.Argument(..., help="Image files and/or directories (searched recursively)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help=".tflite model (default: the shipped BloodMNIST int8)."),
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
    from .assets import default_classifier
    from .data import iter_inputs
    from .io import atomic_open
    from .preprocess import display_name
    from .runtime import TFLiteClassifier, iter_predictions

    try:
        clf = TFLiteClassifier(model or default_classifier(), labels_file=labels, num_threads=threads)
    except EdgeWBCError as e:
        fail(str(e))
    header = ["file", "prediction", "confidence", *clf.labels, "error"]
    bad: list[tuple[str, str]] = []
    dir_errors: list[tuple[str, str]] = []
    n_ok = 0
    blank = [""] * len(clf.labels)

    def unlistable(d: Path, e: OSError) -> None:
        name = display_name(d)
        dir_errors.append((name, f"{name}: cannot list directory ({e.strerror or e})"))

    def rows():
        nonlocal n_ok
        for p, probs, err in iter_predictions(clf, iter_inputs(paths, onerror=unlistable)):
            while dir_errors:
                name, derr = dir_errors.pop(0)
                bad.append((name, derr))
                yield [name, "", "", *blank, derr]
            name = display_name(p)
            if err:
                err = err.encode("utf-8", "backslashreplace").decode("utf-8")  # valid UTF-8 for CSV and terminal
                bad.append((name, err))
                yield [name, "", "", *blank, err]
            else:
                n_ok += 1
                k = int(probs.argmax())
                yield [name, clf.labels[k], f"{probs[k]:.6f}", *[f"{v:.6f}" for v in probs], ""]
        while dir_errors:
            name, derr = dir_errors.pop(0)
            bad.append((name, derr))
            yield [name, "", "", *blank, derr]

    try:
        if output:
            with atomic_open(output, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                for r in rows():
                    w.writerow(r)
        else:
            w = csv.writer(sys.stdout)
            w.writerow(header)
            for r in rows():
                w.writerow(r)
    except EdgeWBCError as e:  # the model failed mid-run; -o keeps its old content
        fail(str(e))
    except OSError as e:
        if output is None:
            raise  # stdout problems (a closed pipe) are Typer's to handle
        fail(f"{display_name(output)}: cannot write the CSV ({e.strerror or e})")
    if bad:
        console.print(f"[yellow]{len(bad)} file(s) could not be classified:[/]")
        for name, err in bad:
            console.print(f"  {escape(err)}", highlight=False, soft_wrap=True)
    console.print(f"classified {n_ok} image(s) with {clf.path.name} ({clf.backend} {clf.backend_version})"
                  + (f" -> {display_name(output)}" if output else ""), highlight=False)
    if n_ok == 0 and not bad:
        fail(f"no image files found in {', '.join(map(display_name, paths))}")
    if bad and not skip_bad:
        raise typer.Exit(1)


# ---- bench ------------------------------------------------------------------------------------
def _parse_threads(s: str) -> tuple[int, ...]:
    try:
        t = tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{s!r}: expected comma-separated integers, e.g. 1,2,4") from None
    if not t or any(x < 1 for x in t):
        raise typer.BadParameter(f"{s!r}: thread counts must be >= 1")
    return t


@app.command()
def bench(
    more_models: Optional[List[Path]] = typer.Argument(None, metavar="[MODELS]...", show_default=False,
                                                      help="More model dirs/files: `--models a b c` works as in the docs."),
    models: Optional[List[Path]] = typer.Option(None, "--models", "-m", help="Model dirs or files (default: the shipped models)."),
    dataset: Optional[str] = typer.Option(None, help="Dataset (default: the one in model.json)."),
    split: Split = typer.Option(Split.test),
    limit: Optional[int] = typer.Option(None, min=1, help="Bench on the first N images only."),
    threads: str = typer.Option("1", help="Thread counts, comma-separated, e.g. 1,2,4."),
    runs: int = typer.Option(200, min=1, help="Timed runs per variant and thread count."),
    warmup: int = typer.Option(20, min=0),
    batch: Optional[int] = typer.Option(None, min=2, help="Also measure throughput at this batch size."),
    roofline: bool = typer.Option(False, "--roofline", help="Measure this CPU's int8/float32 conv roof; report % of it."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    csv_out: Optional[Path] = typer.Option(None, "--csv"),
    markdown: Optional[Path] = typer.Option(None, "--markdown"),
    plot_out: Optional[Path] = typer.Option(None, "--plot"),
    max_drop: Optional[float] = typer.Option(None, help="Gate: max accuracy drop vs the float reference."),
    min_agreement: Optional[float] = typer.Option(None, help="Gate: min top-1 agreement with the float reference."),
    max_p50_ms: Optional[float] = typer.Option(None, help="Gate: max p50 latency (ms) of any .tflite."),
    max_size_kb: Optional[float] = typer.Option(None, help="Gate: max .tflite size (KB)."),
    compare_to: Optional[Path] = typer.Option(None, "--compare", help="Earlier --json output to compare with."),
    noise_margin: float = typer.Option(0.10, "--noise-margin", min=0.0, help="--compare: relative p50 rise tolerated as noise."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Bench every variant on real images: accuracy, agreement, latency, memory, size. Exit 1 if a gate fails."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .assets import default_bench_models
    from .bench import BenchConfig, check_gates, compare, discover, plot, run_bench, table_rows, to_csv, to_markdown
    from .io import atomic_write_text

    th = _parse_threads(threads)
    baseline = None
    if compare_to:
        try:
            baseline = json.loads(compare_to.read_text())
        except (OSError, json.JSONDecodeError) as e:
            fail(f"--compare {compare_to}: cannot read bench JSON ({e})")
    try:
        given = list(models or []) + list(more_models or [])
        paths = given if given else default_bench_models()
        n_var = len(discover(paths)) * len(th)
        cfg = BenchConfig(threads=th, runs=runs, warmup=warmup, batch=batch, limit=limit, split=split.value,
                          dataset=dataset, data=str(data) if data else None, roofline=roofline)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as prog:
            task = prog.add_task("bench", total=n_var)
            first = [True]

            def step(desc):
                if not first[0]:
                    prog.advance(task)
                first[0] = False
                prog.update(task, description=desc)

            report = run_bench(paths, cfg, progress=step)
            prog.advance(task)
    except EdgeWBCError as e:
        fail(str(e))
    head, body = table_rows(report)
    t = Table(*head, title=f"{report['dataset']} {report['split']} (n={report['n']}), reference: {report['reference']}")
    for row, r in zip(body, report["rows"]):
        t.add_row(*row, style=None if r["status"] == "ok" else "red")
    out_console.print(t)
    for r in report["rows"]:
        if r["status"] != "ok":
            console.print(f"[red]{escape(r['variant'])}[/]: {escape(str(r['error']))}", highlight=False, soft_wrap=True)
    if baseline is not None:
        deltas = compare(report, baseline, noise=noise_margin)
        report["compare"] = deltas
        ct = Table("variant", "thr", "Δ acc", "Δ p50 ms", "Δ p50 %", "Δ size B", "flags")
        for d in deltas:
            if "note" in d:
                ct.add_row(d["variant"], str(d["threads"]), "", "", "", "", d["note"])
            else:
                ct.add_row(d["variant"], str(d["threads"]), f"{d['d_accuracy']:+.4f}", f"{d['d_p50_ms']:+.3f}",
                           f"{d['d_p50_rel']:+.1%}", f"{d['d_size_bytes']:+d}", "; ".join(d["flags"]) or "ok",
                           style="red" if d["regression"] else None)
        out_console.print(ct)
    gates = check_gates(report, max_drop, min_agreement, max_p50_ms, max_size_kb)
    report["gate_failures"] = gates
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
    if csv_out:
        atomic_write_text(csv_out, to_csv(report))
    if markdown:
        atomic_write_text(markdown, to_markdown(report))
    if plot_out:
        plot(report, plot_out)
    if gates:
        for g in gates:
            console.print(f"[bold red]gate failed:[/] {escape(g)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


# ---- segmentation / smear counting ------------------------------------------------------------
def _default_asset(name: str) -> Path:
    from .assets import assets_dir

    p = assets_dir() / name
    if not p.is_file():
        fail(f"{p}: shipped model missing; pass it explicitly")
    return p


@app.command()
def segment(
    images: List[Path] = typer.Argument(..., help="Image files and/or directories."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for <stem>.mask.png, <stem>.nucleus.png, <stem>.overlay.png."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Segmentation .tflite (default: the shipped unet int8)."),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0),
    tile: bool = typer.Option(False, "--tile", help="Slide windows of the model's input size (or --window) over the image at "
                              "native scale, for smear fields at the magnification of the training patches (SigTuple fields for "
                              "the shipped model). Without it the whole image is resized to the model's input: right for one-cell "
                              "patches, wrong for a field."),
    window: Optional[int] = typer.Option(None, min=8, help="With --tile: window size in image pixels, e.g. the training "
                                         "patches' size in your images' magnification (default: the model's input size)."),
    # the default is edge_wbc.segment.SPECK_FRAC (a test checks): the CLI does not import the runtime to start
    min_area_frac: float = typer.Option(1 / 32, min=0.0, max=1.0, help="Drop WBC components smaller than this fraction of the "
                                        "model's input area, at the model's scale (specks: platelets, debris)."),
    threads: int = typer.Option(1, min=1),
    skip_bad: bool = typer.Option(False, "--skip-bad"),
):
    """WBC (and nucleus) masks at each input's own size, plus an overlay."""
    from .data import iter_inputs
    from .segment import TFLiteSegmenter, segment_file

    if window is not None and not tile:
        fail(f"--window {window} applies with --tile only: add --tile, or leave --window out")
    try:
        seg = TFLiteSegmenter(model or _default_asset("wbc_unet_int8.tflite"), num_threads=threads)
    except EdgeWBCError as e:
        fail(str(e))
    n, bad = 0, []
    for p in iter_inputs(images):
        try:
            segment_file(seg, p, out, threshold, tile, min_area_frac, window)
            n += 1
        except ImageError as e:
            bad.append(str(e))
    for b in bad:
        console.print(f"  {escape(b)}", highlight=False, soft_wrap=True)
    size = f"{seg.spec.input_width}x{seg.spec.input_height}"
    how = f"tiled in {f'{window}x{window}' if window else size} px windows" if tile else f"resized to {size}"
    console.print(f"segmented {n} image(s), {how} -> {out}", highlight=False)
    if bad and not skip_bad:
        raise typer.Exit(1)


@app.command()
def count(
    smears: List[Path] = typer.Argument(..., help="Smear images and/or directories."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for annotated PNGs."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    csv_out: Optional[Path] = typer.Option(None, "--csv"),
    detector: Optional[Path] = typer.Option(None, help="WBC detector .tflite (default: the shipped smear unet int8, or with "
                                            "--tile the shipped cell unet int8)."),
    classifier: Optional[Path] = typer.Option(None, help="WBC crop classifier .tflite (default: shipped bccd4 int8)."),
    uncertain_below: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Override the classifier's threshold."),
    tile: bool = typer.Option(False, "--tile", help="Find WBCs with the cell segmenter in windows at native scale, for smear "
                              "fields at the magnification of its training patches (SigTuple fields; WBCs about 60 px across). "
                              "Without it the whole smear is resized for the BCCD smear detector (640x480 BCCD fields)."),
    window: Optional[int] = typer.Option(None, min=8, help="With --tile: window size in image pixels (default: the detector's input size)."),
    threads: int = typer.Option(1, min=1),
    skip_bad: bool = typer.Option(False, "--skip-bad"),
):
    """Find every WBC on smear images, classify each, report counts and percentages per subtype."""
    from .count import UNCERTAIN, SmearCounter, summarize, write_outputs
    from .data import iter_inputs

    if window is not None and not tile:
        fail(f"--window {window} applies with --tile only: add --tile, or leave --window out")
    try:
        sc = SmearCounter(detector or _default_asset("wbc_unet_int8.tflite" if tile else "smear_unet_int8.tflite"),
                          classifier or _default_asset("bccd4_int8.tflite"), threads=threads, uncertain_below=uncertain_below,
                          tile=tile, window=window)
    except EdgeWBCError as e:
        fail(str(e))
    results, bad = [], []
    for p in iter_inputs(smears):
        try:
            r = sc.count_image(p)
            if out:
                sc.annotate(p, r, out / f"{p.stem}.count.png")
        except ImageError as e:
            bad.append(str(e))
            r = {"file": str(p), "cells": [], "counts": {}, "error": str(e)}
        results.append(r)
    report = summarize(results, sc.clf.labels)
    write_outputs(report, sc.clf.labels, json_out, csv_out)
    t = Table("file", "WBCs", *sc.clf.labels, UNCERTAIN)
    for r in results:
        t.add_row(Path(r["file"]).name, str(len(r["cells"])), *[str(r["counts"].get(k, 0)) for k in [*sc.clf.labels, UNCERTAIN]])
    t.add_row("total %", str(sum(report["totals"].values())), *[f"{report['percent'][k]:.1f}" for k in [*sc.clf.labels, UNCERTAIN]], style="bold")
    out_console.print(t)
    for b in bad:
        console.print(f"  {escape(b)}", highlight=False, soft_wrap=True)
    if bad and not skip_bad:
        raise typer.Exit(1)


@app.command()
def calibrate(
    model: Path = typer.Argument(..., help="Classifier .tflite; its <stem>.json gets temperature and uncertain_below."),
    target: float = typer.Option(0.95, min=0.0, max=1.0, help="Accuracy wanted on the val crops that are not 'uncertain'."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Fit temperature scaling and the 'uncertain' threshold of a classifier on its val split."""
    from .count import calibrate as apply_t, choose_threshold, fit_temperature
    from .data import load_dataset
    from .runtime import TFLiteClassifier
    from .spec import ModelSpec, spec_path_for

    try:
        clf = TFLiteClassifier(model)
        val = load_dataset(clf.spec.dataset, clf.spec, data=data, seed=clf.spec.split_seed).split("val")
    except EdgeWBCError as e:
        fail(str(e))
    p = clf.predict(val.images)
    t = fit_temperature(p, val.labels)
    thr, acc, cov = choose_threshold(apply_t(p, t), val.labels, target)
    sp = spec_path_for(model)
    spec = ModelSpec.load(sp)
    spec.replace(metrics={**spec.metrics, "temperature": t, "uncertain_below": thr, "uncertain_val": {
        "n": len(val), "accepted_accuracy": acc, "accepted_share": cov, "target": target}}).save(sp)
    out_console.print(f"{sp}: temperature {t:.3f}, uncertain below {thr:.3f} (val n={len(val)}: accepted {cov:.1%} at accuracy {acc:.4f})")


# ---- data -------------------------------------------------------------------------------------
@data_app.command("info")
def data_info(data: Optional[Path] = typer.Option(None, help=DATA_HELP)):
    """Show where data is looked for and what is found there."""
    from .data import ENV_VAR, data_root, data_sources, describe

    try:
        root = data_root(data)
    except DataError as e:
        fail(str(e))
    console.print("data is looked for in: " + " -> ".join(f"{k} ({v})" for k, v in data_sources(data)), highlight=False)
    t = Table("dataset", "present", "path", "description", title=f"data root: {root}")
    for r in describe(root):
        t.add_row(r["dataset"], "yes" if r["present"] else "no", r["path"], r["description"])
    out_console.print(t)
    if not any(r["present"] for r in describe(root)):
        console.print(f"nothing found: set {ENV_VAR}, pass --data, or run `edge-wbc data fetch bloodmnist`")


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset to download: bloodmnist."),
    data: Optional[Path] = typer.Option(None, help="Download into this root instead of the user cache dir."),
    url: Optional[str] = typer.Option(None, help="Alternative URL (a mirror); the md5 is still checked."),
):
    """Download a dataset (with its md5 check) into the user cache dir."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from .data import fetch

    try:
        with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True) as prog:
            task = prog.add_task(f"fetch {name}", total=None)

            def cb(n, total):
                prog.update(task, advance=n, total=total or None)

            path = fetch(name, Path(data) if data else None, url=url, progress=cb)
    except EdgeWBCError as e:
        fail(str(e))
    out_console.print(f"{name}: {path} (md5 ok)")


@data_app.command("check")
def data_check(
    dataset: str = typer.Argument(..., help="bloodmnist, pbc128, bccd4, bccd2, or a folder path."),
    size: int = typer.Option(28, help="Size the images are loaded at."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
    threshold: int = typer.Option(4, help="Max Hamming distance of 64-bit perceptual hashes to call a near-duplicate."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
):
    """Class counts per split and near-duplicate images across splits (perceptual hash)."""
    from .data import load_dataset
    from .dupes import cross_split_duplicates
    from .spec import ModelSpec

    try:
        ds = load_dataset(dataset, ModelSpec("classification", size, size, ("a", "b")), data=data)
    except EdgeWBCError as e:
        fail(str(e))
    counts = ds.counts()
    t = Table("class", *counts.keys(), title=f"{ds.name}: images per split")
    for lab in ds.labels:
        t.add_row(lab, *[str(counts[s][lab]) for s in counts])
    t.add_row("total", *[str(sum(counts[s].values())) for s in counts], style="bold")
    out_console.print(t)
    dups = cross_split_duplicates(ds, threshold)
    dt = Table("splits", "near-duplicate pairs", "examples")
    for k, pairs in dups.items():
        dt.add_row(k, str(len(pairs)), "; ".join(f"{a} ~ {b} (d={d})" for a, b, d in pairs[:3]))
    out_console.print(dt)
    if json_out:
        from .io import atomic_write_text

        atomic_write_text(json_out, json.dumps({"dataset": ds.name, "counts": counts, "threshold": threshold,
                                                 "near_duplicates": {k: [list(p) for p in v] for k, v in dups.items()}}, indent=2))


from .android_cli import register as _register_android
_register_android(app)


def _terminate(signum, frame) -> None:
    """SIGTERM -> SystemExit(143): unwinds like Ctrl-C, so `with` blocks and atomic_open clean up.

    (Without a handler SIGTERM kills Python on the spot and leaves temp files behind. Typer turns
    KeyboardInterrupt into exit 130 but lets SystemExit through, so this keeps its own code.)
    """
    raise SystemExit(128 + signum)


def main() -> None:
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit as e:
        if e.code in (130, 128 + signal.SIGTERM):
            console.print("interrupted" if e.code == 130 else "terminated (SIGTERM)", highlight=False)
        raise
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except EdgeWBCError as e:  # anything that escaped a command's own handling
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
