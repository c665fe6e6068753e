"""Where the shipped default models live.

A wheel installs them as ``edge_wbc/android_assets/``; a source checkout (``pip install -e .``)
has them at ``<repo>/android_assets/``. ``EDGE_WBC_MODELS`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EdgeWBCError, ModelError

#: The default of ``classify`` and the crop classifier of ``count``: the field model (five WBC classes,
#: WBC-centred crops, trained on PBC + BCCD + wbc_seg). The PBC / BloodMNIST models stay as benchmarks.
DEFAULT_CLASSIFIER = "wbc_field_int8.tflite"

#: The default WBC detector of ``count``: the multi-source field detector (BCCD + smartphone_pig fields at
#: one canonical scale; :mod:`edge_wbc.training.detector`).
DEFAULT_DETECTOR = "wbc_det_int8.tflite"

#: The same detector's weights behind a 128 px window (``scripts/detector_window.py``; its training crops
#: were 128 px): ``count`` runs it on a field that fits in one such window at the canonical scale (a BCCD
#: field is about 90 x 70 px there). Chosen on the BCCD val fields: the same recall and precision, 5x less
#: detection time (BCCD test p50 87 -> 43 ms a field; docs/segmentation-counting.md).
SMALL_FIELD_DETECTOR = "wbc_det128_int8.tflite"


def detector_for_mode(tile: bool | None) -> str:
    """The shipped detector of a count mode: the field detector by default; the expert modes keep theirs
    (``--tile``: the cell segmenter in native-scale windows; ``--no-tile``: the BCCD smear detector)."""
    return {True: "wbc_unet_int8.tflite", False: "smear_unet_int8.tflite"}.get(tile, DEFAULT_DETECTOR)


def assets_dir() -> Path:
    env = os.environ.get("EDGE_WBC_MODELS")
    if env:
        p = Path(env)
        if not p.is_dir():
            raise ModelError(f"EDGE_WBC_MODELS={env}: no such directory")
        return p
    here = Path(__file__).resolve().parent
    for cand in (here / "android_assets", here.parent / "android_assets"):
        if cand.is_dir() and any(cand.glob("*.tflite")):
            return cand
    raise ModelError("no shipped models found (edge_wbc/android_assets or the repository's android_assets/); "
                     "pass --model/--models, or set EDGE_WBC_MODELS")


def shipped_names() -> list[str]:
    """Short names of the shipped models: the stems of ``android_assets/*.tflite``."""
    try:
        return sorted(p.stem for p in assets_dir().glob("*.tflite") if not p.name.startswith("."))
    except ModelError:
        return []


def resolve_model(name: str | Path) -> Path:
    """A model path, or a shipped model's short name (``bccd4_int8``, ``bccd4_int8.tflite``, ``bloodmnist.keras``).

    The one resolver for every option that takes a model (``-m``, ``--detector``, ``bench -m``,
    ``calibrate``, ``export-android``): an existing path wins; else a name found in the shipped
    models; else a ModelError that lists the shipped names.
    """
    p = Path(name)
    if p.exists():
        return p
    s = str(name)
    if "/" not in s and "\\" not in s:
        try:
            d = assets_dir()
        except ModelError:
            d = None
        if d is not None:
            for cand in (d / s, d / f"{s}.tflite", d / f"{s}.keras"):
                if cand.is_file():
                    return cand
    names = shipped_names()
    raise ModelError(f"{name}: no such model file (no such file or directory, and not a shipped model name"
                     + (f": valid names are {', '.join(names)}; see `edge-wbc models`)" if names else ")"))


def default_classifier() -> Path:
    p = assets_dir() / DEFAULT_CLASSIFIER
    if not p.is_file():
        raise ModelError(f"{p}: the default classifier is missing; pass --model")
    return p


def tensorflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def default_bench_models() -> list[Path]:
    """The shipped BloodMNIST models: the Keras float reference (only where TensorFlow is installed:
    without it the row could only fail) and every ``bloodmnist_*.tflite``."""
    d = assets_dir()
    keras = sorted(d.glob("bloodmnist*.keras")) if tensorflow_available() else []
    return keras + sorted(d.glob("bloodmnist_*.tflite"))


def shipped_models() -> list[dict]:
    """One row per shipped model: name, file, task, input size, classes, training dataset, test score.

    Read from each model's own JSON (a bundle's ``accuracy_this_file``, else the spec's ``metrics``);
    ``edge-wbc models`` shows them and the input hint picks a suggestion from them.
    """
    import json

    from .spec import ModelSpec, spec_path_for

    rows = []
    for name in shipped_names():
        f = assets_dir() / f"{name}.tflite"
        sp = spec_path_for(f)
        try:
            raw = json.loads(sp.read_text(encoding="utf-8"))
            spec = ModelSpec.load(sp)
        except (OSError, ValueError, EdgeWBCError):
            continue
        m = spec.metrics or {}
        acc = (raw.get("accuracy_this_file") or {}).get("accuracy") if isinstance(raw, dict) else None
        if spec.task == "segmentation":
            d = m.get("wbc/all", {}).get("dice")
            score = f"Dice {d:.3f} (wbc)" if d is not None else "-"
        else:
            acc = acc if acc is not None else m.get("accuracy")
            score = f"{acc:.4f}" if acc is not None else "-"
        rows.append({"name": name, "file": f, "task": spec.task, "input": (spec.input_height, spec.input_width),
                     "labels": list(spec.labels), "dataset": spec.dataset, "quantization": spec.quantization,
                     "score": score, "accuracy": acc})
    return rows
