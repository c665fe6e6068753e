"""TFLite interpreter selection, file checks and the crash-safe first load (no TensorFlow).

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

import contextlib
import importlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

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


#: Warnings the interpreter raises at construction that say nothing a user of edge-wbc can act on:
#: LiteRT's own Interpreter announces the deprecation of tf.lite.Interpreter, and edge-wbc keeps all
#: tensors on purpose where it measures clipped activations.
QUIET_WARNINGS = (
    r"\s*Warning: tf\.lite\.Interpreter is deprecated",
    r"\s*Warning: Enabling `experimental_preserve_all_tensors`",
)


def verbose() -> bool:
    """Library logs are shown (``edge-wbc -v``, or ``EDGE_WBC_VERBOSE=1``)."""
    return os.environ.get("EDGE_WBC_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


#: Native log lines dropped from stderr unless verbose: TFLite's "INFO: Created TensorFlow Lite XNNPACK
#: delegate", LiteRT's INFO lines, TF / absl / CUDA start-up lines. Anything else is passed through.
NATIVE_NOISE = re.compile(
    r"^(INFO: |I\d{4} |W\d{4} |E\d{4} .*(cuda|cuDNN|cuFFT|cuBLAS|factory)|WARNING: All log messages before absl|"
    r".*(oneDNN custom operations|cpu_feature_guard|This TensorFlow binary is optimized|"
    r"rebuild TensorFlow with the appropriate compiler|Unable to register cu|TF-TRT Warning|"
    r"computation placer already registered|could not find cuda drivers|Could not find TensorRT))")


@contextlib.contextmanager
def quiet_native_stderr():
    """Filter what is written to file descriptor 2 while the block runs (see :data:`NATIVE_NOISE`).

    fd 2 goes to a pipe whose reader thread passes every other line on at once, so progress lines
    and errors (Python's own ``sys.stderr`` included) still appear as they are written. With
    ``verbose()`` nothing is filtered.
    """
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        r, w = os.pipe()
    except (OSError, ValueError, AttributeError):
        yield
        return

    def pump():
        with os.fdopen(r, "rb") as fh:
            for line in fh:
                if not NATIVE_NOISE.match(line.decode("utf-8", "replace")):
                    try:
                        os.write(saved, line)
                    except OSError:
                        pass

    t = threading.Thread(target=pump, name="edge-wbc-stderr-filter", daemon=True)
    t.start()
    os.dup2(w, 2)
    os.close(w)
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # the pipe's last write end here closes: the reader sees EOF
        t.join(timeout=5)
        os.close(saved)


def _quiet(cls: type) -> type:
    """``cls`` with the :data:`QUIET_WARNINGS` silenced and native INFO logs filtered around its
    construction and ``allocate_tensors`` (and nowhere else)."""

    class Interpreter(cls):
        def __init__(self, *args, **kwargs):
            with warnings.catch_warnings(), quiet_native_stderr():
                for msg in QUIET_WARNINGS:
                    warnings.filterwarnings("ignore", message=msg)
                super().__init__(*args, **kwargs)

        def allocate_tensors(self, *args, **kwargs):
            with quiet_native_stderr():
                return super().allocate_tensors(*args, **kwargs)


    Interpreter.__module__, Interpreter.__qualname__ = cls.__module__, cls.__qualname__
    return Interpreter


@cache
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
        dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}[
            name
        ]
        return _quiet(obj), name, _version(dist)
    raise ModelError(
        "no TFLite interpreter could be imported ("
        + "; ".join(errors)
        + "). Install ai-edge-litert: pip install ai-edge-litert"
    )


def preserving_interpreter(content: bytes):
    """An allocated interpreter that keeps every intermediate tensor (``experimental_preserve_all_tensors``),
    without the default delegates (XNNPACK would fuse ops and hide their outputs): for per-layer reports."""
    Interp, _, _ = interpreter_backend()
    mod = __import__(Interp.__module__, fromlist=["OpResolverType"])
    kw = {"experimental_preserve_all_tensors": True}
    if hasattr(mod, "OpResolverType"):
        kw["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interp(model_content=content, **kw)
    it.allocate_tensors()
    return it


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


# ---- crash-safe first load --------------------------------------------------------------------
#: Seconds the child may take to load, allocate and run the model once.
PROBE_TIMEOUT_S = 120.0


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0].strip() if s else type(e).__name__


def _try_model(Interp, content: bytes, num_threads: int) -> tuple[str, str]:
    """Load, allocate and run once on zeros. Returns (stage, error message); ("ok", "") if it ran."""

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
from edge_wbc.runtime.interpreter import _try_model, interpreter_backend
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
        what = {"load": "cannot load it", "allocate": "cannot allocate its tensors", "run": "cannot run it"}.get(
            stage, stage
        )
        raise ModelError(f"{path}: the interpreter {what} ({msg})")
