"""The model wrapper shared by the classifier and the segmenter: a ``.tflite`` with its ModelSpec.

It loads the file (after the crash-safe probe), checks the input tensor against the spec, and turns
raw pixels into the input tensor's type and the output tensor into floats. What the output means
(class probabilities, probability maps) is for the subclasses to check and use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError, SpecError
from ..spec import ModelSpec, spec_path_for
from .interpreter import _first_line, check_tflite_file, interpreter_backend, probe_model


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
        shown = ", ".join(repr(x[:40]) for x in dup[:3]) + (f" and {len(dup) - 3} more" if len(dup) > 3 else "")
        raise ModelError(f"{p}: labels file repeats {shown} ({len(labels)} lines; it takes one class name a "
                         "line, each once, in the model's class order)")
    return labels



#: which commands take a model of each kind (for the error that names the right one)
COMMANDS_FOR = {"classifier": "`edge-wbc classify -m`, `count --model`, `calibrate`, `bench`, `export-android`",
                "segmenter": "`edge-wbc segment -m` or `count --detector`"}


def check_task(path: Path, spec: ModelSpec, kind: str | None) -> None:
    """A segmentation model where a classifier is wanted (or the reverse) is a one-line ModelError."""
    if kind is None:
        return
    is_seg = spec.task == "segmentation"
    if kind == "classifier" and is_seg:
        raise ModelError(f"{path}: is a segmentation model (task {spec.task!r}), not a classifier; "
                         f"use it with {COMMANDS_FOR['segmenter']}")
    if kind == "segmenter" and not is_seg:
        raise ModelError(f"{path}: is a {spec.task} model, not a segmentation model; "
                         f"use it with {COMMANDS_FOR['classifier']}")


class TFLiteModel:
    """A ``.tflite`` and its model.json: one raw-pixel input, one output, (de)quantized by the tensor details.

    ``images`` are raw RGB uint8 arrays (N, H, W, C) at the spec's size, or file paths (they go
    through :func:`edge_wbc.preprocess.preprocess`). Input and output (de)quantization is taken from
    the tensor details, so float, float16, dynamic and full-integer models are used the same way.

    Every problem with the model file, its model.json or a labels file is a :class:`ModelError`.
    ``probe`` (default: on, ``EDGE_WBC_PROBE=0`` turns it off) first loads and runs the model once in
    a child process (:func:`probe_model`), so a corrupt file that crashes the native interpreter
    cannot crash this process.
    """

    task_kind: str | None = None  # "classifier" / "segmenter": the spec's task is checked before loading
    max_outputs: int = 1  # a classifier may have a second output: its features, for the OOD score

    def _main_output(self, outs: list[dict], spec: ModelSpec) -> dict:
        """The output the task reads (the only one, unless a subclass allows more)."""
        return outs[0]

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
        check_task(self.path, spec, self.task_kind)
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
        if len(ins) != 1 or not 1 <= len(outs) <= self.max_outputs:
            want = "1 output" if self.max_outputs == 1 else f"1-{self.max_outputs} outputs"
            raise ModelError(f"{self.path}: expected 1 input and {want}, got {len(ins)} and {len(outs)}")
        self.input, self.output = ins[0], self._main_output(outs, spec)
        #: the other outputs (a classifier's penultimate features), in the interpreter's order
        self.extra_outputs = [o for o in outs if o["index"] != self.output["index"]]
        shape = tuple(int(v) for v in self.input["shape"])
        want = (1, *spec.input_shape)
        if len(shape) != 4 or shape[1:] != want[1:]:
            raise ModelError(
                f"{self.path}: model input shape {shape} disagrees with model.json {want} "
                f"(input_height/input_width/channels)"
            )
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

    def dequantize_output(self, y: np.ndarray, detail: dict | None = None) -> np.ndarray:
        """An output tensor (the main one, or the one ``detail`` describes) as float32 values."""
        d = self.output if detail is None else detail
        dtype = self.output_dtype if detail is None else np.dtype(detail["dtype"])
        if dtype in (np.uint8, np.int8, np.int16):
            scale, zp = d["quantization"]
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

    def tensor_types(self) -> dict:
        return {"input": self.input_dtype.name, "output": self.output_dtype.name}
