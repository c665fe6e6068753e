"""`edge-wbc train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import DATA_HELP, app, fail, quiet_tf, say
from .choices import ClassWeights, Optimizer


def parse_builder_args(items: list[str]) -> dict:
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
    dataset: str = typer.Option(
        "bloodmnist", help="bloodmnist, pbc128, bccd4, bccd2, a folder path; unet: seg, wbcseg, sigtuple, bccd_smear, "
        "or fields[:bccd,smartphone_pig,sigtuple] (the WBC detector on smear fields)."
    ),
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
    jitter: float = typer.Option(
        0.0,
        min=0.0,
        max=1.0,
        help="Photometric augmentation strength (brightness, contrast, saturation, hue); 0 = off.",
    ),
    resize_from: Optional[int] = typer.Option(
        None, "--resize-from", min=1,
        help="Load the train images at this size and shrink each batch to --size with a random filter "
        "(bicubic, bilinear, area, nearest): robust to an app's resize, e.g. MediaPipe's bilinear.",
    ),
    ema: float = typer.Option(
        0.0, help="EMA momentum of the weights (e.g. 0.99), used for val, checkpoints and the saved model; 0 = off."
    ),
    boundary_weight: float = typer.Option(
        0.0,
        "--boundary-weight",
        min=0.0,
        help="unet: extra cross-entropy weight on pixels within 2 px of a mask boundary; 0 = off.",
    ),
    refit: bool = typer.Option(
        False,
        "--refit",
        help="unet: train on train + val for exactly --epochs and keep the last epoch (after choosing the "
             "recipe on val).",
    ),
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help="Start from this model dir's weights (same-named layers of the same shape; transfer learning).",
    ),
    arg: Optional[List[str]] = typer.Option(
        None,
        "--arg",
        help="Builder argument KEY=VALUE (JSON value), e.g. --arg base=12; repeatable; saved in model.json.",
    ),
    holdout: Optional[str] = typer.Option(
        None, "--holdout", help="Field models: a source of --dataset left out of training (leave-one-source-out)."
    ),
    steps: int = typer.Option(120, min=1, help="Field models: batches per epoch."),
    label_map: Optional[List[str]] = typer.Option(
        None, "--label-map", help="Field models: folder class OLD=NEW, e.g. segmented=neutrophil (repeatable)."
    ),
    folds: Optional[int] = typer.Option(
        None, "--folds", min=2, help="Folder tree: stratified k-fold CV split (seeded); --fold is the test fold."
    ),
    fold: Optional[int] = typer.Option(None, "--fold", min=0, help="With --folds: the test fold, 0 to folds-1."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
    strategy: str = typer.Option(
        "default", help="tf.distribute strategy: default, mirrored (local GPUs or logical CPUs), multiworker "
                        "(TF_CONFIG); see docs/training-distributed.md."),
    local_workers: Optional[int] = typer.Option(
        None, "--local-workers", min=1, help="Start N multiworker processes on this machine (127.0.0.1 ports)."),
    devices: int = typer.Option(2, min=1, help="mirrored without a GPU: this many logical CPU devices."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT/.backup."),
    mixed_precision: bool = typer.Option(
        False, "--mixed-precision", help="float16 compute on GPU (a no-op with a note on CPU); saved as float32."),
    connect_timeout: float = typer.Option(
        120.0, "--connect-timeout", min=1.0, help="multiworker: seconds to wait for every worker to join."),
):
    """Train a registered model; writes model.keras, model.json, history.csv, curves.png, metrics.json.

    A comma-separated --dataset (e.g. pbc128,bccd,wbcseg) trains a field classifier on several cell
    sources at once (five WBC classes, WBC-centred crops, source-balanced sampling).
    """
    # names and builder arguments are checked before the (5 s) TensorFlow import
    from ..training import get_model
    from ..training.registry import check_kwargs
    from .app import check_out_dir

    get_model(model)
    builder_args = parse_builder_args(arg or [])
    check_kwargs(model, builder_args)
    check_out_dir(out)
    from ..data.fields import is_fields_dataset

    if resize_from and ("," in dataset or model == "fieldnet" or is_fields_dataset(dataset)):
        fail("--resize-from is for a classifier on one dataset; field models and the detector draw their own "
             "scales and resize filters")
    if is_fields_dataset(dataset):  # the multi-source WBC detector (a U-Net on fields at one canonical scale)
        if model != "unet":
            fail(f"--dataset {dataset}: field detection trains a unet, not {model!r}")
        quiet_tf()
        try:
            from ..training.detector import DetectorHParams, train_detector
        except ImportError as e:
            fail(f"training needs the train extra ({e}): pip install 'edge-wbc[train]'")
        hp = DetectorHParams(dataset=dataset, holdout=holdout, epochs=epochs, steps=steps, batch=min(batch, 64),
                             window=size or DetectorHParams.window,
                             lr=lr or 2e-3, seed=seed, jitter=jitter or 1.0, patience=patience, limit=limit,
                             model_kwargs=builder_args)
        render.trained(train_detector(hp, out, data=data, log=say), out)
        return
    if "," in dataset or model == "fieldnet":
        if folds is not None or fold is not None:
            fail("--folds/--fold are for one folder tree (edge-wbc cv runs every fold), not for field models")
        from ..data.cells import parse_label_map

        lm = parse_label_map(label_map)
        quiet_tf()
        try:
            from ..training.field import FieldHParams, train_field
        except ImportError as e:
            fail(f"training needs the train extra ({e}): pip install 'edge-wbc[train]'")
        hp = FieldHParams(sources=tuple(s for s in dataset.split(",") if s), model=model, holdout=holdout,
                          size=size or 64, epochs=epochs, batch=min(batch, 256), lr=lr or 2e-3, seed=seed, steps=steps,
                          limit=limit, label_map=lm, model_kwargs=builder_args)
        render.trained(train_field(hp, out, data=data, log=say), out)
        return
    if holdout or label_map:
        fail("--holdout and --label-map are for field models (a comma-separated --dataset)")
    quiet_tf()
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        from ..training.runner import run_training
        from ..training.train import HParams
    except ImportError as e:
        fail(f"training needs the train extra ({e}): pip install 'edge-wbc[train]'")
    hp = HParams(
        model=model,
        dataset=dataset,
        size=size,
        epochs=epochs,
        batch=batch,
        optimizer=optimizer.value,
        lr=lr,
        class_weights=class_weights.value if class_weights else None,
        seed=seed,
        patience=patience,
        limit=limit,
        jitter=jitter,
        resize_from=resize_from,
        ema=ema,
        boundary_weight=boundary_weight,
        refit=refit,
        model_kwargs=builder_args,
        init=str(init) if init else None,
        folds=folds,
        fold=fold,
        strategy="multiworker" if local_workers else strategy,
        devices=devices,
        resume=resume,
        mixed_precision=mixed_precision,
        connect_timeout=connect_timeout,
    )
    if local_workers and strategy not in ("default", "multiworker"):
        fail(f"--local-workers runs --strategy multiworker, not {strategy!r}")
    from ..runtime.interpreter import quiet_native_stderr

    with quiet_native_stderr():  # TensorFlow's C++ log lines unless -v
        metrics = run_training(hp, out, data=data, log=say, local_workers=local_workers)
    render.trained(metrics, out)


@app.command()
def cv(
    model: str = typer.Argument(..., help="Registered classifier (see `edge-wbc models`)."),
    dataset: Path = typer.Option(..., "--dataset", help="A folder of <class>/ image folders (e.g. blast/, normal/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for cv.json, cv.md and one run per fold (fold<i>/)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Number of stratified folds; each is the test fold once."),
    positive: Optional[str] = typer.Option(
        None, "--positive", help="Class whose recall is the sensitivity (default: the second of two classes)."
    ),
    size: Optional[int] = typer.Option(None, help="Input size in pixels (default: the model's)."),
    epochs: int = typer.Option(30, min=1),
    batch: int = typer.Option(32, min=1),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default per optimizer)."),
    seed: int = typer.Option(0, min=0, help="Seeds the folds, the val slices and training."),
    patience: int = typer.Option(8, min=1, help="Early-stopping patience on val accuracy."),
    jitter: float = typer.Option(0.0, min=0.0, max=1.0, help="Photometric augmentation strength; 0 = off."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use only N images per split (smoke runs)."),
    arg: Optional[List[str]] = typer.Option(None, "--arg", help="Builder argument KEY=VALUE (JSON value)."),
):
    """Stratified k-fold cross-validation on a folder tree: mean ± sd of accuracy, AUC and sensitivity."""
    quiet_tf()
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        from ..training.cv import run_cv
        from ..training.train import HParams
    except ImportError as e:
        fail(f"training needs the train extra ({e}): pip install 'edge-wbc[train]'")
    hp = HParams(model=model, dataset=str(dataset), size=size, epochs=epochs, batch=batch, lr=lr, seed=seed,
                 patience=patience, jitter=jitter, limit=limit, model_kwargs=parse_builder_args(arg or []))
    from ..runtime.interpreter import quiet_native_stderr

    with quiet_native_stderr():  # TensorFlow's C++ log lines unless -v
        report = run_cv(hp, out, folds=folds, positive=positive, log=say)
    render.cv_done(report, out)
