"""TFLite runtime without TensorFlow: interpreter selection and the classifier wrapper.

Interpreter preference: ``ai_edge_litert`` (LiteRT, current), then ``tflite_runtime`` (last release
2.14, NumPy < 2 only), then ``tensorflow.lite`` (deprecated). ``EDGE_WBC_INTERPRETER`` forces one
(``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow``).

Corrupt models and native crashes: the interpreter checks the flatbuffer's structure itself, but not
everything a model says; some corrupt files pass that check and then crash the process in native
code (a fuzz run found a ``.tflite`` whose output zero point of 2**31 segfaults in
``allocate_tensors``). So before a model is loaded in this process, :func:`probe_model` loads it,
allocates its tensors and runs it once on a blank input in a child process (``fork`` on Linux, a
fresh interpreter elsewhere). A child killed by a signal, or one that fails, becomes a
:class:`ModelError`; only a model that survived is loaded here. ``EDGE_WBC_PROBE=0`` turns it off.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ImageError, ModelError, SpecError
from .metrics import class_probs
from .preprocess import preprocess
from .spec import ModelSpec, spec_path_for

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_MODULES = {  # backend -> (module to import, attribute path to the Interpreter class)
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for d in (dist, dist.replace("_", "-")):
        try:
            return version(d)
        except PackageNotFoundError:
            continue
    return "unknown"


@lru_cache(maxsize=None)
def interpreter_backend(prefer: str | None = None) -> tuple[type, str, str]:
    """Return (Interpreter class, backend name, package version)."""
    prefer = prefer or os.environ.get("EDGE_WBC_INTERPRETER") or None
    if prefer is not None and prefer not in BACKENDS:
        raise ModelError(f"invalid interpreter {prefer!r}: valid choices are {', '.join(BACKENDS)}")
    order = [prefer] if prefer else list(BACKENDS)
    errors = []
    for name in order:
        try:
            obj = importlib.import_module(_MODULES[name][0])
            for attr in _MODULES[name][1].split("."):
                obj = getattr(obj, attr)
        except Exception as e:  # ImportError, or tflite_runtime's crash under NumPy 2
            errors.append(f"{name}: {type(e).__name__}: {e}")
            continue
        dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}[name]
        return obj, name, _version(dist)
    raise ModelError("no TFLite interpreter could be imported (" + "; ".join(errors) + "). Install ai-edge-litert: pip install ai-edge-litert")


def check_tflite_file(path: Path) -> bytes:
    """Read a .tflite file and check that it is a TFLite flatbuffer ("TFL3")."""
    try:
        if not path.exists():
            raise ModelError(f"{path}: no such model file")
        if path.is_dir():
            raise ModelError(f"{path}: is a directory; pass a .tflite file")
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read the model file ({e.strerror or e})") from None
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier; {len(data)} bytes)")
    root = int.from_bytes(data[:4], "little")
    if not 8 <= root <= len(data) - 4:
        raise ModelError(f"{path}: corrupt TFLite model (root table offset {root} outside the {len(data)}-byte file)")
    return data


def read_labels(path: str | Path) -> tuple[str, ...]:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: labels file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"{p}: labels file is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ModelError(f"{p}: cannot read the labels file ({e.strerror or e})") from None
    labels = tuple(ln.strip() for ln in text.splitlines() if ln.strip())
    if not labels:
        raise ModelError(f"{p}: labels file is empty")
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise ModelError(f"{p}: labels file repeats {dup}")
    return labels


# ---- crash-safe first load --------------------------------------------------------------------
#: Seconds the child may take to load, allocate and run the model once.
PROBE_TIMEOUT_S = 120.0


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0].strip() if s else type(e).__name__


def _try_model(Interp, content: bytes, num_threads: int) -> tuple[str, str]:
    """Load, allocate and run once on zeros. Returns (stage, error message); ("ok", "") if it ran."""
    import numpy as np

    stage = "load"
    try:
        it = Interp(model_content=content, num_threads=num_threads)
        stage = "allocate"
        it.allocate_tensors()
        stage = "run"
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
        for d in it.get_output_details():
            it.get_tensor(d["index"])
        return "ok", ""
    except BaseException as e:  # noqa: BLE001 - the child reports anything, MemoryError included
        return stage, _first_line(e)[:500]


_PROBE_CHILD = """
import json, sys
from edge_wbc.runtime import _try_model, interpreter_backend
backend, threads = sys.argv[1], int(sys.argv[2])
content = sys.stdin.buffer.read()
Interp = interpreter_backend(backend)[0]
stage, msg = _try_model(Interp, content, threads)
sys.stdout.write(json.dumps([stage, msg]))
"""


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _probe_fork(Interp, content: bytes, num_threads: int, timeout: float) -> tuple[str, str] | str:
    r, w = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: no Python cleanup, no output of its own
        code = 1
        try:
            os.close(r)
            import faulthandler

            faulthandler.disable()  # a crash here is the expected outcome of a bad file, not news
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            res = _try_model(Interp, content, num_threads)
            os.write(w, json.dumps(res).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out, status, finished = b"", 0, False
    try:
        deadline = time.monotonic() + timeout
        while True:  # read until the child exits (EOF on the pipe) or the time is up
            left = deadline - time.monotonic()
            if left <= 0:
                return f"did not finish loading and running it within {timeout:.0f} s"
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                out += chunk
        _, status = os.waitpid(pid, 0)
        finished = True
    finally:
        os.close(r)
        if not finished:  # timed out or interrupted: never leave the child behind
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    if os.WIFSIGNALED(status):
        return f"crashed the interpreter ({_signal_name(os.WTERMSIG(status))})"
    try:
        return tuple(json.loads(out))
    except ValueError:
        return f"the interpreter exited without a result (exit status {os.WEXITSTATUS(status)})"


def _probe_spawn(backend: str, content: bytes, num_threads: int, timeout: float) -> tuple[str, str] | str:
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE_CHILD, backend, str(num_threads)], input=content,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish loading and running it within {timeout:.0f} s"
    if r.returncode < 0:
        return f"crashed the interpreter ({_signal_name(-r.returncode)})"
    try:
        return tuple(json.loads(r.stdout.decode("utf-8", "replace")))
    except ValueError:
        return f"the interpreter exited without a result (exit status {r.returncode})"


def probe_model(path: Path, content: bytes, num_threads: int = 1, backend: str | None = None,
                timeout: float | None = None) -> None:
    """Load, allocate and run the model once in a child process; ModelError if that crashes or fails.

    A corrupt model can make the native interpreter crash (segfault) instead of raising, which would
    take this process down with it; in a child it only costs the child.
    """
    Interp, name, _ = interpreter_backend(backend)
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    if hasattr(os, "fork") and sys.platform.startswith("linux"):
        res = _probe_fork(Interp, content, num_threads, timeout)
    else:
        res = _probe_spawn(name, content, num_threads, timeout)
    if isinstance(res, str):
        raise ModelError(f"{path}: corrupt or unsafe model: loading it {res}; it was not loaded in this process")
    stage, msg = res
    if stage != "ok":
        what = {"load": "cannot load it", "allocate": "cannot allocate its tensors", "run": "cannot run it"}.get(stage, stage)
        raise ModelError(f"{path}: the interpreter {what} ({msg})")


class TFLiteClassifier:
    """Load a ``.tflite`` and its model.json; ``predict(images) -> probabilities``.

    ``images`` are raw RGB uint8 arrays (N, H, W, C) at the spec's size, or file paths (they go
    through :func:`edge_wbc.preprocess.preprocess`). Input and output (de)quantization is taken from
    the tensor details, so float, float16, dynamic and full-integer models are used the same way.

    Every problem with the model file, its model.json or a labels file is a :class:`ModelError`.
    ``probe`` (default: on, ``EDGE_WBC_PROBE=0`` turns it off) first loads and runs the model once in
    a child process (:func:`probe_model`), so a corrupt file that crashes the native interpreter
    cannot crash this process.
    """

    def __init__(self, path: str | Path, spec: ModelSpec | None = None, labels_file: str | Path | None = None,
                 num_threads: int = 1, backend: str | None = None, probe: bool | None = None):
        self.path = Path(path)
        self.content = check_tflite_file(self.path)
        if spec is None:
            try:
                spec = ModelSpec.load(spec_path_for(self.path))
            except SpecError as e:
                raise ModelError(f"{self.path}: {e}") from None
            except OSError as e:
                raise ModelError(f"{self.path}: cannot read its model.json ({e.strerror or e})") from None
        if labels_file is not None:
            labels = read_labels(labels_file)
            if len(labels) != len(spec.labels):
                raise ModelError(
                    f"{labels_file}: has {len(labels)} labels but {self.path.name} has {len(spec.labels)} classes"
                )
            try:
                spec = spec.replace(labels=labels)
            except SpecError as e:
                raise ModelError(f"{labels_file}: {e}") from None
        self.spec = spec
        Interp, self.backend, self.backend_version = interpreter_backend(backend)
        if probe is None:
            probe = os.environ.get("EDGE_WBC_PROBE", "1").strip().lower() not in ("0", "false", "no", "off")
        if probe:
            probe_model(self.path, self.content, num_threads, self.backend)
        try:
            self.interpreter = Interp(model_content=self.content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except Exception as e:  # the interpreter raises ValueError/RuntimeError on bad models
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{self.path}: the interpreter cannot load it ({msg})") from None
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{self.path}: expected 1 input and 1 output, got {len(ins)} and {len(outs)}")
        self.input, self.output = ins[0], outs[0]
        shape = tuple(int(v) for v in self.input["shape"])
        want = (1, *spec.input_shape)
        if len(shape) != 4 or shape[1:] != want[1:]:
            raise ModelError(
                f"{self.path}: model input shape {shape} disagrees with model.json {want} "
                f"(input_height/input_width/channels)"
            )
        out_shape = tuple(int(v) for v in self.output["shape"])
        spatial_ok = spec.task == "segmentation"  # (1, H, W, C) maps; TFLiteSegmenter checks H and W
        if len(out_shape) < 2 or out_shape[0] != 1 or min(out_shape) < 1 or (
                not spatial_ok and any(v != 1 for v in out_shape[1:-1])):
            raise ModelError(f"{self.path}: model output shape {out_shape} is not (1, classes)")
        n_out = out_shape[-1]
        self.binary_sigmoid = n_out == 1 and spec.num_classes == 2
        if n_out != spec.num_classes and not self.binary_sigmoid:
            raise ModelError(f"{self.path}: model has {n_out} outputs but model.json lists {spec.num_classes} labels")
        try:
            self.input_dtype = np.dtype(self.input["dtype"])
            self.output_dtype = np.dtype(self.output["dtype"])
        except TypeError as e:
            raise ModelError(f"{self.path}: unsupported tensor type ({e})") from None

    # ---- low level ------------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Raw pixels (N?, H, W, C) -> the input tensor's dtype, using its quantization."""
        if self.input_dtype in (np.uint8, np.int8, np.int16):
            scale, zp = self.input["quantization"]
            info = np.iinfo(self.input_dtype)
            if scale == 0:
                return np.clip(x, info.min, info.max).astype(self.input_dtype)
            if self.input_dtype == np.uint8 and abs(scale - 1.0) < 1e-6 and zp == 0 and x.dtype == np.uint8:
                return x  # raw pixels are already the quantized values
            q = np.round(np.asarray(x, np.float32) / scale + zp)
            return np.clip(q, info.min, info.max).astype(self.input_dtype)
        return np.asarray(x, dtype=self.input_dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        if self.output_dtype in (np.uint8, np.int8, np.int16):
            scale, zp = self.output["quantization"]
            return (y.astype(np.float32) - zp) * np.float32(scale)
        return y.astype(np.float32)

    def invoke_one(self, q: np.ndarray) -> np.ndarray:
        """One already-quantized image (1, H, W, C) -> raw output tensor copy."""
        try:
            self.interpreter.set_tensor(self.input["index"], q)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output["index"])
        except (RuntimeError, ValueError) as e:  # the interpreter's errors: a model problem, not an image's
            raise ModelError(f"{self.path}: inference failed ({_first_line(e)})") from None

    def _probs(self, raw: np.ndarray) -> np.ndarray:
        return class_probs(self.dequantize_output(raw), self.spec.num_classes)

    # ---- high level -----------------------------------------------------------------------------
    def predict(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """Probabilities (N, num_classes) for raw uint8 images (N, H, W, C) or image paths."""
        if not isinstance(images, np.ndarray):
            images = np.stack([preprocess(p, self.spec) for p in images]) if len(images) else np.zeros((0, *self.spec.input_shape), np.uint8)
        if images.ndim == 3:
            images = images[None]
        if images.shape[1:] != self.spec.input_shape:
            raise ImageError(f"images have shape {images.shape[1:]}, the model wants {self.spec.input_shape}")
        out = np.empty((len(images), self.spec.num_classes), np.float32)
        for i in range(len(images)):
            out[i] = self._probs(self.invoke_one(self.quantize_input(images[i : i + 1])))[0]
        return out

    def predict_file(self, path: str | Path) -> np.ndarray:
        return self.predict(preprocess(path, self.spec)[None])[0]

    def tensor_types(self) -> dict:
        return {"input": self.input_dtype.name, "output": self.output_dtype.name}


def iter_predictions(clf: TFLiteClassifier, paths: Iterable[Path]):
    """Stream (path, probs | None, error | None) over files: bad files do not stop the run."""
    for p in paths:
        try:
            yield p, clf.predict_file(p), None
        except ImageError as e:
            yield p, None, str(e)
