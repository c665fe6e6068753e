"""TFLite runtime without TensorFlow: interpreter selection and the classifier wrapper.

Interpreter preference: ``ai_edge_litert`` (LiteRT, current), then ``tflite_runtime`` (last release
2.14, NumPy < 2 only), then ``tensorflow.lite`` (deprecated). ``EDGE_WBC_INTERPRETER`` forces one
(``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow``).
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ImageError, ModelError, SpecError
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
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory; pass a .tflite file")
    data = path.read_bytes()
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier; {len(data)} bytes)")
    return data


def read_labels(path: str | Path) -> tuple[str, ...]:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: labels file not found")
    labels = tuple(ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip())
    if not labels:
        raise ModelError(f"{p}: labels file is empty")
    return labels


class TFLiteClassifier:
    """Load a ``.tflite`` and its model.json; ``predict(images) -> probabilities``.

    ``images`` are raw RGB uint8 arrays (N, H, W, C) at the spec's size, or file paths (they go
    through :func:`edge_wbc.preprocess.preprocess`). Input and output (de)quantization is taken from
    the tensor details, so float, float16, dynamic and full-integer models are used the same way.
    """

    def __init__(self, path: str | Path, spec: ModelSpec | None = None, labels_file: str | Path | None = None,
                 num_threads: int = 1, backend: str | None = None):
        self.path = Path(path)
        self.content = check_tflite_file(self.path)
        if spec is None:
            try:
                spec = ModelSpec.load(spec_path_for(self.path))
            except SpecError as e:
                raise ModelError(f"{self.path}: {e}") from None
        if labels_file is not None:
            labels = read_labels(labels_file)
            if len(labels) != len(spec.labels):
                raise ModelError(
                    f"{labels_file}: has {len(labels)} labels but {self.path.name} has {len(spec.labels)} classes"
                )
            spec = spec.replace(labels=labels)
        self.spec = spec
        Interp, self.backend, self.backend_version = interpreter_backend(backend)
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
        n_out = int(self.output["shape"][-1])
        self.binary_sigmoid = n_out == 1 and spec.num_classes == 2
        if n_out != spec.num_classes and not self.binary_sigmoid:
            raise ModelError(f"{self.path}: model has {n_out} outputs but model.json lists {spec.num_classes} labels")
        self.input_dtype = np.dtype(self.input["dtype"])
        self.output_dtype = np.dtype(self.output["dtype"])

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
        self.interpreter.set_tensor(self.input["index"], q)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def _probs(self, raw: np.ndarray) -> np.ndarray:
        p = self.dequantize_output(raw).reshape(raw.shape[0], -1)
        if self.binary_sigmoid:
            p = np.concatenate([1.0 - p, p], axis=1)
        return p

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
