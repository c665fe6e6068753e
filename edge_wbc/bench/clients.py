"""Bench clients: who runs a ``.tflite`` in a bench row, as an app would.

* ``edge-wbc``: edge-wbc's own pipeline (Pillow decode + resize, LiteRT ``Interpreter``);
* ``compiled``: LiteRT 2.x ``CompiledModel`` (``ai_edge_litert.compiled_model``) on the same
  preprocessed images (:func:`edge_wbc.bench.worker.run_compiled`);
* ``mediapipe``: MediaPipe Tasks ``ImageClassifier`` on the original image files, with its own decode
  and resize (:mod:`edge_wbc.bench.mp_worker`), in a subprocess of a Python that has mediapipe: this
  one if it can import mediapipe, else ``$EDGE_WBC_MEDIAPIPE_PYTHON`` (e.g. a venv made for it:
  ``python -m venv mpvenv && mpvenv/bin/pip install 'mediapipe==1.2.3'``, the ``clients`` extra).

Resize filters (``--resize``) re-run the edge-wbc row with another filter; ``area`` is Pillow's BOX
(area averaging, what OpenCV's INTER_AREA does when shrinking).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import ModelError
from ..spec import RESAMPLE

CLIENTS = ("edge-wbc", "mediapipe", "compiled")
RESIZE_ALIASES = {"area": "box"}
RESIZE_CHOICES = tuple(RESAMPLE) + tuple(RESIZE_ALIASES)
MEDIAPIPE_ENV = "EDGE_WBC_MEDIAPIPE_PYTHON"
MEDIAPIPE_HINT = (f"mediapipe is not installed: pip install 'edge-wbc[clients]' (a venv without TensorFlow: their "
                  f"protobuf pins conflict), or point {MEDIAPIPE_ENV} at a Python that has mediapipe")
WORKER = Path(__file__).with_name("mp_worker.py")


def _parse_choices(s: str, flag: str, what: str, choices) -> tuple[str, ...]:
    """A comma-separated list of ``choices``; an unknown or empty one is an error naming the valid ones."""
    got = tuple(x.strip() for x in s.split(",") if x.strip())
    bad = [x for x in got if x not in choices]
    if bad or not got:
        raise ModelError(f"{flag} {s!r}: unknown {what} {bad[0] if bad else '(none)'!r}: valid choices are "
                         f"{', '.join(choices)}")
    return got


def parse_clients(s: str) -> tuple[str, ...]:
    got = _parse_choices(s, "--clients", "client", CLIENTS)
    return got if "edge-wbc" in got else ("edge-wbc", *got)


def parse_resize(s: str) -> tuple[str, ...]:
    return _parse_choices(s, "--resize", "filter", RESIZE_CHOICES)


def pil_filter(name: str) -> str:
    return RESIZE_ALIASES.get(name, name)


def mediapipe_python() -> str:
    """A Python executable that can import mediapipe; ModelError with the install hint if none."""
    env = os.environ.get(MEDIAPIPE_ENV)
    if env:
        exe = shutil.which(env) or env
        if not Path(exe).is_file():
            raise ModelError(f"{MEDIAPIPE_ENV}={env}: no such Python executable")
        return exe
    try:
        if importlib.util.find_spec("mediapipe") is not None:
            return sys.executable
    except (ImportError, ValueError):
        pass
    raise ModelError(MEDIAPIPE_HINT)


def run_mediapipe(job_file: Path, timeout: float) -> dict:
    """Run :mod:`mp_worker` on ``job_file`` in a Python with mediapipe; the result dict (never raises)."""
    import json

    try:
        exe = mediapipe_python()
    except ModelError as e:
        return {"status": "failed", "error": str(e)}
    job = json.loads(job_file.read_text())
    # another venv's Python must not see this one's packages; this Python keeps its own path
    env = dict(os.environ) if exe == sys.executable else {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("GLOG_minloglevel", "2")
    try:
        proc = subprocess.run([exe, str(WORKER), str(job_file)], capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"mediapipe: timed out after {timeout:.0f}s"}
    except OSError as e:
        return {"status": "failed", "error": f"mediapipe: cannot run {exe} ({e.strerror or e})"}
    out = Path(job["out"])
    if out.is_file():
        res = json.loads(out.read_text())
        if "No module named 'mediapipe'" in str(res.get("error", "")):
            res["error"] = f"{exe}: {MEDIAPIPE_HINT}"
        return res
    lines = (proc.stderr or "").strip().splitlines()
    if any("No module named 'mediapipe'" in ln for ln in lines):
        return {"status": "failed", "error": f"{exe}: {MEDIAPIPE_HINT}"}
    tail = lines[-1:] or [f"exit code {proc.returncode}"]
    return {"status": "failed", "error": f"mediapipe worker crashed (exit {proc.returncode}): {tail[0]}"}


def mediapipe_rois(files: list[str], spec) -> list[list[float]] | None:
    """For a ``crop: "wbc"`` model, per file the square an app cuts around the WBC before MediaPipe resizes it.

    The square is :func:`edge_wbc.runtime.wbccrop.crop_square`'s around the WBC that the spec's
    ``crop_model`` finds (what edge-wbc's own pipeline crops), as [left, top, right, bottom] in 0..1 of
    the image. MediaPipe refuses a region outside the image ("Expected RectF values to be in [0,1]"),
    so a square that leaves it is shifted back inside, and shrunk to the image's shorter side if it is
    longer; edge-wbc reflect-pads there instead. None for a model without a WBC crop.
    """
    if spec.crop != "wbc":
        return None
    from ..preprocess import load_image
    from ..runtime.wbccrop import crop_segmenter, crop_square, find_wbc

    seg = crop_segmenter(spec.crop_model)
    out = []
    for f in files:
        img = load_image(f)
        W, H = img.size
        left, top, side = crop_square((W, H), find_wbc(seg, img).box, spec.crop_ratio)
        side = min(side, W, H)
        left, top = min(max(left, 0), W - side), min(max(top, 0), H - side)
        out.append([left / W, top / H, (left + side) / W, (top + side) / H])
    return out
