"""The conversion modes: one table (:data:`MODE_TABLE`, see :func:`export_formats`) and one function per mode.

Each :class:`ModeInfo` row holds the mode's converter function, its typed options with their
defaults, whether it calibrates, whether it fine-tunes with tfmot, and the tensor type its I/O has.
The CLI's ``--mode`` choices, ``ModelSpec``'s ``quantization`` check and the converter dispatch all
read this table, and an option that does not apply to a mode is an error naming the modes it applies
to. A mode function takes the Keras model, its ModelSpec, the calibration images and exactly its own
options, and returns the ``.tflite`` bytes; nothing else touches the converter object, so no second
function can undo a setting (e.g. reset int8 I/O types) after the mode set it.

This module imports neither TensorFlow nor any other part of edge-wbc but the errors.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from edge_wbc.errors import EdgeWBCError


class ConversionError(EdgeWBCError):
    """The converter failed, or its output does not do what the mode promises."""


def _converter(model):
    import tensorflow as tf

    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def pin_pixel_range(calib_images):
    """Copy of the calibration images whose first image has one pixel at 0 and one at 255.

    The input tensor's quantization comes from the min/max of the calibration inputs. Pinning the
    full 0..255 range gives the uint8 input scale 1 and zero point 0 whatever the data's range, so
    the integer model takes raw pixels unchanged (two pixels of one image barely move any other range).
    """
    import numpy as np

    x = np.array(calib_images, dtype=np.float32, copy=True)
    x[0, 0, 0, :] = 0.0
    x[0, 0, 1, :] = 255.0
    return x


def _representative(calib_images):
    if calib_images is None or len(calib_images) == 0:
        raise ConversionError("this mode needs calibration images (--calib N from the train split), got none")
    x = pin_pixel_range(calib_images)

    def gen():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    return gen


def convert_float32(model, spec, calib_images) -> bytes:
    """Plain float32 TFLite: the reference for the quantized modes."""
    _, conv = _converter(model)
    return conv.convert()


def convert_float16(model, spec, calib_images) -> bytes:
    """float16 weights (half the size), float32 compute and I/O on CPU; GPU delegates run fp16."""
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def convert_dynamic(model, spec, calib_images) -> bytes:
    """Dynamic-range: int8 weights, activations quantized on the fly, float32 I/O. No calibration."""
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def layer_of(tensor: str) -> str:
    """The Keras layer a TFLite tensor comes from: ``wbcnet_1/s1a_relu_1/Relu;...`` -> ``s1a_relu``."""
    parts = tensor.split(";")[0].split("/")
    name = parts[1] if len(parts) > 1 else parts[0]
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


def keep_float_nodes(keep: str, tensor_names: list[str]) -> list[str]:
    """The op-output tensor names of the layers named in ``keep`` (comma-separated); ConversionError
    naming the nearest valid layer names for a layer the model does not have."""
    import difflib

    layers: dict[str, list[str]] = {}
    for t in tensor_names:
        if "/" in t:
            layers.setdefault(layer_of(t), []).append(t)
    nodes = []
    for want in (w.strip() for w in keep.split(",") if w.strip()):
        if want not in layers:
            near = difflib.get_close_matches(want, list(layers), n=5, cutoff=0.3) or sorted(layers)[:8]
            raise ConversionError(f"--keep-float {want!r}: no such layer in the model; nearest: {', '.join(near)} "
                                  f"(all: {', '.join(layers)})")
        nodes += layers[want]
    if not nodes:
        raise ConversionError(f"--keep-float {keep!r}: no layer named; valid layers: {', '.join(layers)}")
    return nodes


def default_keep_float(model) -> str | None:
    """The layers of ``model`` whose class sets ``int8_keep_float`` (e.g. ImageStandardize), comma-separated;
    None when there are none."""
    names = [layer.name for layer in model.layers if getattr(layer, "int8_keep_float", False)]
    return ",".join(names) or None


def _selective_int8(tf, conv, io: str, per_tensor: bool, keep_float: str) -> bytes:
    """Calibrate, then quantize every op but the ``keep_float`` layers' (they run in float between a
    DEQUANTIZE and a QUANTIZE), as TF's QuantizationDebugger does with ``denylisted_nodes``."""
    from tensorflow.lite.python import convert as tfl_convert
    from tensorflow.lite.python.util import modify_model_io_type
    from tensorflow.lite.tools import flatbuffer_utils

    conv._experimental_calibrate_only = True
    calibrated = conv.convert()
    sg = flatbuffer_utils.convert_bytearray_to_object(calibrated).subgraphs[0]
    names = [sg.tensors[op.outputs[0]].name.decode() for op in sg.operators if len(op.outputs)]
    nodes = keep_float_nodes(keep_float, names)
    q = tfl_convert.mlir_quantize(calibrated, disable_per_channel=per_tensor, fully_quantize=False,
                                  input_data_type=tf.float32, output_data_type=tf.float32, denylisted_nodes=nodes)
    if io != "float32":  # float I/O with QUANTIZE/DEQUANTIZE at the edges -> integer I/O, as the converter does
        q = modify_model_io_type(q, getattr(tf, io), getattr(tf, io))
    return bytes(q)


def convert_int8(model, spec, calib_images, *, io: str, per_tensor: bool, allow_float_fallback: bool,
                 keep_float: str | None = None) -> bytes:
    """Full-integer int8, calibrated on train images; uint8 I/O by default (raw pixels in).

    ``keep_float``: comma-separated Keras layer names kept in float (selective quantization); None:
    the layers that ask for it (:func:`default_keep_float`); ``"none"``: every layer quantized.
    """
    keep_float = default_keep_float(model) if keep_float is None else (None if keep_float == "none" else keep_float)
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib_images)
    if keep_float:
        return _selective_int8(tf, conv, io, per_tensor, keep_float)
    if allow_float_fallback:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float32":
        conv.inference_input_type = getattr(tf, io)
        conv.inference_output_type = getattr(tf, io)
    if per_tensor:
        conv._experimental_disable_per_channel = True  # documented converter flag, no public API
    return conv.convert()


def convert_int16x8(model, spec, calib_images, *, io: str) -> bytes:
    """int16 activations, int8 weights (experimental op set); float32 or int16 I/O."""
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib_images)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if io == "int16":
        conv.inference_input_type = tf.int16
        conv.inference_output_type = tf.int16
    return conv.convert()


def run_tfmot(model, spec, mode: str, timeout: float = 3600, fit_log: dict | None = None, **job) -> bytes:
    """Run a tfmot mode in a tf_keras subprocess (TF_USE_LEGACY_KERAS=1 must precede the TF import)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if not spec.source_model:
        raise ConversionError(
            f"{mode} needs model.json's source_model (the registered architecture) to rebuild it in tf_keras"
        )
    with tempfile.TemporaryDirectory(prefix=f"edge-wbc-{mode}-") as tmp:
        tmp = Path(tmp)
        import numpy as np

        np.savez(tmp / "weights.npz", *model.get_weights())
        out = tmp / "model.tflite"
        job = {k: v for k, v in job.items() if v is not None}
        job.update(mode=mode, spec=spec.to_dict(), weights=str(tmp / "weights.npz"), out=str(out))
        (tmp / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            proc = subprocess.run([sys.executable, "-m", "edge_wbc.converters.tfmot_worker", str(tmp / "job.json")],
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"{mode}: fine-tuning did not finish within {timeout:.0f}s") from None
        err = tmp / "model.tflite.error"
        if err.is_file():
            raise ConversionError(f"{mode}: {err.read_text()}")
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            raise ConversionError(f"{mode}: the tf_keras worker failed ({tail})")
        log_file = tmp / "model.tflite.log.json"
        if fit_log is not None and log_file.is_file():
            fit_log.update(json.loads(log_file.read_text()))
        return out.read_bytes()


def convert_qat(model, spec, calib_images, *, io: str, epochs: int, lr: float, limit: int | None, per_tensor: bool,
                allow_float_fallback: bool, allow_below_ptq: bool, data=None, seed: int = 0, calib: int = 500,
                fit_log: dict | None = None) -> bytes:
    """Quantization-aware fine-tuning (tfmot, tf_keras), then full-integer conversion (uint8 I/O).

    BatchNorm keeps the float model's statistics (frozen, inference mode) while the fake-quantized
    weights and ranges are fine-tuned, and the epoch with the best fake-quantized val accuracy is the
    one converted (``fit_log`` receives the per-epoch val accuracy and the chosen epoch).
    ``per_tensor``, ``allow_float_fallback`` and ``allow_below_ptq`` are for the checks after it (the
    PTQ int8 comparison and the float-op check of :func:`edge_wbc.converters.pipeline.convert_model_dir`).
    """
    return run_tfmot(model, spec, "qat", io=io, epochs=epochs, lr=lr, limit=limit, data=data, seed=seed, calib=calib,
                     fit_log=fit_log)


def convert_pruned(model, spec, calib_images, *, io: str, sparsity: float, epochs: int, lr: float, limit: int | None,
                   prune_clusters: int, allow_float_fallback: bool, data=None, seed: int = 0, calib: int = 500,
                   fit_log: dict | None = None) -> bytes:
    """Magnitude pruning of Conv2D/Dense kernels to ``sparsity`` while fine-tuning, stripped, then int8.

    ``prune_clusters`` > 0 adds sparsity-preserving clustering of the remaining weights (one more
    fine-tuning epoch): the zeros stay, the nonzero weights share that many values per layer, and the
    file compresses further.
    """
    if not 0.0 < sparsity < 1.0:
        raise ConversionError(f"invalid --sparsity {sparsity}: must be between 0 and 1")
    if prune_clusters and prune_clusters < 2:
        raise ConversionError(f"invalid --prune-clusters {prune_clusters}: must be 0 (off) or >= 2")
    return run_tfmot(model, spec, "pruned", io=io, sparsity=sparsity, epochs=epochs, lr=lr, limit=limit,
                     data=data, seed=seed, calib=calib, prune_clusters=prune_clusters or None, fit_log=fit_log)


def convert_clustered(model, spec, calib_images, *, io: str, clusters: int, epochs: int, lr: float, limit: int | None,
                      allow_float_fallback: bool, data=None, seed: int = 0, calib: int = 500,
                      fit_log: dict | None = None) -> bytes:
    """Weight clustering (k-means++ init, ``clusters`` centroids per layer), fine-tuned, stripped, then int8."""
    if clusters < 2:
        raise ConversionError(f"invalid --clusters {clusters}: must be >= 2")
    return run_tfmot(model, spec, "clustered", io=io, clusters=clusters, epochs=epochs, lr=lr, limit=limit,
                     data=data, seed=seed, calib=calib, fit_log=fit_log)


# ---- the mode table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """A typed mode option: its name (the keyword of the mode function), type, default and CLI flag."""

    name: str
    type: type
    default: Any
    flag: str
    help: str = ""
    choices: tuple | None = None


def _io(default: str, choices: tuple[str, ...]) -> Option:
    return Option("io", str, default, "--io", "input/output tensor type", choices)


_PER_TENSOR = Option("per_tensor", bool, False, "--per-tensor", "per-tensor weight quantization")
_FLOAT_FALLBACK = Option(
    "allow_float_fallback", bool, False, "--allow-float-fallback", "accept float ops left in the model"
)


def _finetune(epochs: int, lr: float) -> tuple[Option, ...]:
    return (Option("epochs", int, epochs, "--ft-epochs", "fine-tuning epochs"),
            Option("lr", float, lr, "--ft-lr", "fine-tuning learning rate"),
            Option("limit", int, None, "--ft-limit", "fine-tune on N train images"))


#: I/O tensor types of the integer modes that take raw pixels (uint8 by default).
IO_TYPES = ("uint8", "int8", "float32")


@dataclass(frozen=True)
class ModeInfo:
    name: str
    fn: Callable[..., bytes]
    description: str
    options: tuple[Option, ...] = ()
    calibrated: bool = False  # needs calibration images (from --calib-split)
    tfmot: bool = False  # fine-tunes in the tf_keras worker (tensorflow-model-optimization)
    integer: bool = False  # full-integer graph: float ops left in it are refused unless allowed
    io: str | None = None  # the fixed I/O tensor type of a float-I/O mode (else the ``io`` option says)

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}


MODE_TABLE: dict[str, ModeInfo] = {m.name: m for m in (
    ModeInfo("float32", convert_float32, "plain float32: the reference for the quantized modes", io="float32"),
    ModeInfo("float16", convert_float16, "float16 weights, float32 compute and I/O on CPU", io="float32"),
    ModeInfo("dynamic", convert_dynamic, "int8 weights, activations quantized on the fly, float32 I/O", io="float32"),
    ModeInfo("int8", convert_int8, "full-integer int8 calibrated on train images, uint8 I/O (raw pixels)",
             (_io("uint8", IO_TYPES), _PER_TENSOR, _FLOAT_FALLBACK,
              Option("keep_float", str, None, "--keep-float", "keep these layers in float (comma-separated; "
                     "none: quantize every layer; default: the layers that ask for it, e.g. standardize)")),
             calibrated=True, integer=True),
    ModeInfo("int16x8", convert_int16x8, "int16 activations, int8 weights, float32 or int16 I/O",
             (_io("float32", ("float32", "int16")),), calibrated=True),
    ModeInfo("qat", convert_qat, "quantization-aware fine-tuning (tfmot), then full-integer int8",
             (_io("uint8", IO_TYPES), *_finetune(8, 1e-5), _PER_TENSOR, _FLOAT_FALLBACK,
              Option("allow_below_ptq", bool, False, "--allow-below-ptq", "keep a QAT model below PTQ int8 on val")),
             tfmot=True, integer=True),
    ModeInfo("pruned", convert_pruned, "magnitude pruning while fine-tuning, then full-integer int8",
             (_io("uint8", IO_TYPES), *_finetune(2, 1e-4), _FLOAT_FALLBACK,
              Option("sparsity", float, 0.5, "--sparsity", "target sparsity of Conv2D/Dense kernels"),
              Option("prune_clusters", int, 0, "--prune-clusters", "then cluster the kept weights (0 = off)")),
             tfmot=True, integer=True),
    ModeInfo("clustered", convert_clustered, "weight clustering while fine-tuning, then full-integer int8",
             (_io("uint8", IO_TYPES), *_finetune(2, 1e-4), _FLOAT_FALLBACK,
              Option("clusters", int, 16, "--clusters", "weight clusters per layer")),
             tfmot=True, integer=True),
)}

#: The conversion modes, in table order (the CLI's --mode choices).
CONVERT_MODES = tuple(MODE_TABLE)
#: Every ModelSpec ``quantization``: the Keras model itself, then the conversion modes.
QUANTIZATIONS = ("keras", *CONVERT_MODES)
#: Keyword arguments the pipeline passes to the tfmot modes (not user options).
_INTERNAL = ("data", "seed", "calib", "fit_log")


def export_formats() -> list[dict]:
    """The mode table as rows (name, description, options with defaults, calibrated, tfmot), for docs and tools."""
    return [{"mode": m.name, "description": m.description, "options": m.defaults(), "calibrated": m.calibrated,
             "tfmot": m.tfmot} for m in MODE_TABLE.values()]


def mode_info(mode: str) -> ModeInfo:
    if mode not in MODE_TABLE:
        raise ConversionError(f"invalid mode {mode!r}: valid choices are {', '.join(CONVERT_MODES)}")
    return MODE_TABLE[mode]


def modes_with(option: str) -> tuple[str, ...]:
    return tuple(m.name for m in MODE_TABLE.values() if m.option(option))


def _typed(value, t: type) -> bool:
    if t is bool:
        return isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, t)


def resolve_options(mode: str, options: dict) -> dict:
    """The mode's options: its defaults updated by ``options``, each checked against the table.

    An option of another mode is an error that names the modes it applies to; an unknown one names
    the mode's own options; a value outside an option's choices names them.
    """
    info = mode_info(mode)
    out = info.defaults()
    for name, value in options.items():
        opt = info.option(name)
        if opt is None:
            where = modes_with(name)
            flag = next((o.flag for m in MODE_TABLE.values() for o in m.options if o.name == name), name)
            if where:
                raise ConversionError(f"{flag} does not apply to --mode {mode}: it applies to {', '.join(where)}")
            own = ", ".join(o.name for o in info.options) or "none"
            raise ConversionError(f"invalid option {name!r} for --mode {mode}: valid options are {own}")
        if value is None and opt.default is None:
            out[name] = None
            continue
        if not _typed(value, opt.type):
            raise ConversionError(f"invalid {opt.flag} {value!r}: must be {opt.type.__name__}")
        if opt.choices and value not in opt.choices:
            raise ConversionError(
                f"invalid {opt.flag} {value!r} for {mode}: valid choices are {', '.join(opt.choices)}"
            )
        out[name] = value
    return out


def convert_keras(model, spec, mode: str, calib_images=None, **options) -> bytes:
    """Convert by the table: ``options`` are checked and completed by :func:`resolve_options`.

    The pipeline's own keyword arguments for the tfmot modes (data, seed, calib, fit_log) pass through.
    """
    info = mode_info(mode)
    internal = {k: options.pop(k) for k in _INTERNAL if k in options}
    if internal and not info.tfmot:
        raise ConversionError(
            f"{', '.join(internal)}: only the tfmot modes "
            f"({', '.join(m for m in CONVERT_MODES if MODE_TABLE[m].tfmot)}) take these"
        )
    opts = resolve_options(mode, options)
    try:
        # the Keras exporter prints its SavedModel signature to stdout; keep stdout for results. The
        # converter's note that integer inputs come without statistics is by design (the input range is
        # pinned to 0..255, see pin_pixel_range), so it is not passed on.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return info.fn(model, spec, calib_images if info.calibrated else None, **opts, **internal)
    except ConversionError:
        raise
    except Exception as e:  # the TF converter raises many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConversionError(f"{mode} conversion failed: {first}") from e
