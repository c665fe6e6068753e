"""`edge-wbc convert`: the --mode choices and the mode options come from the mode table.

A mode option given on the command line is passed on, and one that the chosen mode does not take is
an error naming the modes it applies to; options left at their defaults take the mode's own default
from the table (so ``--mode int16x8`` gets float32 I/O, ``--mode qat`` 8 fine-tuning epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..converters.modes import MODE_TABLE
from . import render
from .app import DATA_HELP, app, fail, quiet_tf, say
from .choices import IOType, Mode, SplitName

#: CLI parameter -> mode option name (the keyword of the mode function, as in the table).
MODE_OPTIONS = {"io": "io", "per_tensor": "per_tensor", "allow_float_fallback": "allow_float_fallback",
                "sparsity": "sparsity", "clusters": "clusters", "prune_clusters": "prune_clusters",
                "ft_epochs": "epochs", "ft_lr": "lr", "ft_limit": "limit", "allow_below_ptq": "allow_below_ptq",
                "keep_float": "keep_float"}
assert {o.name for m in MODE_TABLE.values() for o in m.options} == set(MODE_OPTIONS.values())


def _given(ctx: typer.Context, param: str) -> bool:
    """The option was set on the command line (or by the environment), not left at its default."""
    src = ctx.get_parameter_source(param)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


@app.command()
def convert(
    ctx: typer.Context,
    model_dir: Path = typer.Argument(..., metavar="DIR", help="Directory with model.keras and model.json."),
    mode: Mode = typer.Option(Mode.int8, "--mode", help="Quantization mode (no short form: -m is --model elsewhere)."),
    calib: int = typer.Option(500, min=1, help="Calibration images for int8 / int16x8."),
    calib_split: SplitName = typer.Option(SplitName.train, help="Split to calibrate on (never test)."),
    io: IOType = typer.Option(IOType.uint8, "--io", help="int8 mode: input/output tensor type."),
    per_tensor: bool = typer.Option(
        False, "--per-tensor", help="Per-tensor weight quantization (integer-only accelerators)."
    ),
    allow_float_fallback: bool = typer.Option(
        False, "--allow-float-fallback", help="Accept float ops left in an int8 model."
    ),
    allow_chance: bool = typer.Option(False, "--allow-chance", help="Convert even if the model does not beat chance."),
    min_agreement: float = typer.Option(
        0.9, min=0.0, max=1.0, help="Refuse the result below this top-1 agreement with Keras."
    ),
    sparsity: float = typer.Option(0.5, min=0.01, max=0.99, help="pruned: target sparsity of Conv2D/Dense kernels."),
    clusters: int = typer.Option(16, min=2, help="clustered: weight clusters per layer."),
    prune_clusters: int = typer.Option(
        0, "--prune-clusters", min=0, help="pruned: then cluster the kept weights into N values (0 = off)."
    ),
    ft_epochs: Optional[int] = typer.Option(
        None,
        "--ft-epochs",
        min=1,
        help="qat/pruned/clustered: fine-tuning epochs (default: qat 8, pruned/clustered 2).",
    ),
    ft_lr: Optional[float] = typer.Option(
        None,
        "--ft-lr",
        min=0.0,
        help="qat/pruned/clustered: fine-tuning learning rate (default: qat 1e-5, pruned/clustered 1e-4).",
    ),
    allow_below_ptq: bool = typer.Option(
        False, "--allow-below-ptq", help="qat: write the model even if its val accuracy is below PTQ int8's."
    ),
    ft_limit: Optional[int] = typer.Option(
        None, "--ft-limit", min=1, help="qat/pruned/clustered: fine-tune on N train images."
    ),
    keep_float: Optional[str] = typer.Option(
        None, "--keep-float", help="int8: keep these Keras layers in float, e.g. s3a_relu,probs (see edge-wbc "
        "inspect); none: quantize every layer (default: the layers that ask for it: a field model's standardize)."
    ),
    name: Optional[str] = typer.Option(
        None, "--name", help="Output file stem (default: the mode), e.g. int8_pertensor."
    ),
    seed: int = typer.Option(
        0, min=0, help="Seed of the calibration sample and of fine-tuning (the data split stays the training one)."
    ),
    ood: bool = typer.Option(
        False, "--ood", help="Classifiers: add a features output and fit its OOD statistics (train; threshold on val)."
    ),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
):
    """Convert DIR/model.keras to DIR/<mode>.tflite (+ <mode>.json), verified before it is written."""
    quiet_tf()
    if calib_split == SplitName.test:
        fail("--calib-split test is refused: calibrate on train (default) or val")
    given = {param: ctx.params[param] for param in MODE_OPTIONS if _given(ctx, param)}
    options = {MODE_OPTIONS[k]: (v.value if hasattr(v, "value") else v) for k, v in given.items()}
    from ..converters.modes import resolve_options

    resolve_options(mode.value, options)  # an option of another mode fails here, before TensorFlow is imported
    try:
        import tensorflow  # noqa: F401

        from ..converters.pipeline import convert_model_dir
    except ImportError as e:
        fail(f"conversion needs the train extra ({e}): pip install 'edge-wbc[train]'")
    from ..runtime.interpreter import quiet_native_stderr

    with quiet_native_stderr():  # the converter's C++ log lines (MLIR, quantizer) unless -v
        r = convert_model_dir(model_dir, mode.value, data=data, calib=calib, calib_split=calib_split.value,
                              allow_chance=allow_chance, min_agreement=min_agreement, out_name=name, seed=seed,
                              log=say, ood=ood, **options)
    render.converted(r, mode.value)
