"""One converter function per mode; each owns every converter setting of its mode.

A mode function takes the Keras model, its ModelSpec and the mode's options and returns the
``.tflite`` bytes. Nothing else touches the converter object, so no second function can undo a
setting (e.g. reset int8 I/O types) after the mode set it.
"""

from __future__ import annotations

import contextlib
import io
from typing import Callable

import numpy as np

from edge_wbc.errors import EdgeWBCError

IO_TYPES = ("uint8", "int8", "float32")


class ConversionError(EdgeWBCError):
    """The converter failed, or its output does not do what the mode promises."""


MODES: dict[str, Callable] = {}


def register_mode(name: str):
    def deco(fn):
        MODES[name] = fn
        return fn

    return deco


def _converter(model):
    import tensorflow as tf

    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def pin_pixel_range(calib_images: np.ndarray) -> np.ndarray:
    """Copy of the calibration images whose first image has one pixel at 0 and one at 255.

    The input tensor's quantization comes from the min/max of the calibration inputs. Pinning the
    full 0..255 range gives the uint8 input scale 1 and zero point 0 whatever the data's range, so
    the integer model takes raw pixels unchanged (two pixels of one image barely move any other range).
    """
    x = np.array(calib_images, dtype=np.float32, copy=True)
    x[0, 0, 0, :] = 0.0
    x[0, 0, 1, :] = 255.0
    return x


def _representative(calib_images: np.ndarray | None):
    if calib_images is None or len(calib_images) == 0:
        raise ConversionError("this mode needs calibration images (--calib N from the train split), got none")
    x = pin_pixel_range(calib_images)

    def gen():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    return gen


@register_mode("float32")
def convert_float32(model, spec, **_) -> bytes:
    """Plain float32 TFLite: the reference for the quantized modes."""
    _, conv = _converter(model)
    return conv.convert()


@register_mode("float16")
def convert_float16(model, spec, **_) -> bytes:
    """float16 weights (half the size), float32 compute and I/O on CPU; GPU delegates run fp16."""
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


@register_mode("dynamic")
def convert_dynamic(model, spec, **_) -> bytes:
    """Dynamic-range: int8 weights, activations quantized on the fly, float32 I/O. No calibration."""
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


@register_mode("int8")
def convert_int8(model, spec, calib_images=None, io: str = "uint8", per_tensor: bool = False,
                 allow_float_fallback: bool = False, **_) -> bytes:
    """Full-integer int8, calibrated on train images; uint8 I/O by default (raw pixels in)."""
    if io not in IO_TYPES:
        raise ConversionError(f"invalid --io {io!r}: valid choices are {', '.join(IO_TYPES)}")
    tf, conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib_images)
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


@register_mode("int16x8")
def convert_int16x8(model, spec, calib_images=None, io: str = "float32", **_) -> bytes:
    """int16 activations, int8 weights (experimental op set); float32 or int16 I/O."""
    if io not in ("float32", "int16"):
        raise ConversionError(f"invalid --io {io!r} for int16x8: valid choices are float32, int16")
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
        raise ConversionError(f"{mode} needs model.json's source_model (the registered architecture) to rebuild it in tf_keras")
    with tempfile.TemporaryDirectory(prefix=f"edge-wbc-{mode}-") as tmp:
        tmp = Path(tmp)
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


@register_mode("qat")
def convert_qat(model, spec, calib_images=None, io: str = "uint8", epochs: int = 8, lr: float = 1e-5,
                limit: int | None = None, data=None, seed: int = 0, calib: int = 500, fit_log: dict | None = None,
                **_) -> bytes:
    """Quantization-aware fine-tuning (tfmot, tf_keras), then full-integer conversion (uint8 I/O).

    BatchNorm keeps the float model's statistics (frozen, inference mode) while the fake-quantized
    weights and ranges are fine-tuned, and the epoch with the best fake-quantized val accuracy is the
    one converted (``fit_log`` receives the per-epoch val accuracy and the chosen epoch).
    """
    return run_tfmot(model, spec, "qat", io=io, epochs=epochs, lr=lr, limit=limit, data=data, seed=seed, calib=calib,
                     fit_log=fit_log)


@register_mode("pruned")
def convert_pruned(model, spec, calib_images=None, io: str = "uint8", sparsity: float = 0.5, epochs: int = 2,
                   lr: float = 1e-4, limit: int | None = None, data=None, seed: int = 0, calib: int = 500,
                   prune_clusters: int = 0, fit_log: dict | None = None, **_) -> bytes:
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


@register_mode("clustered")
def convert_clustered(model, spec, calib_images=None, io: str = "uint8", clusters: int = 16, epochs: int = 2,
                      lr: float = 1e-4, limit: int | None = None, data=None, seed: int = 0, calib: int = 500,
                      fit_log: dict | None = None, **_) -> bytes:
    """Weight clustering (k-means++ init, ``clusters`` centroids per layer), fine-tuned, stripped, then int8."""
    if clusters < 2:
        raise ConversionError(f"invalid --clusters {clusters}: must be >= 2")
    return run_tfmot(model, spec, "clustered", io=io, clusters=clusters, epochs=epochs, lr=lr, limit=limit,
                     data=data, seed=seed, calib=calib, fit_log=fit_log)


def convert_keras(model, spec, mode: str, **options) -> bytes:
    if mode not in MODES:
        raise ConversionError(f"invalid mode {mode!r}: valid choices are {', '.join(MODES)}")
    try:
        # the Keras exporter prints its SavedModel signature to stdout; keep stdout for results
        with contextlib.redirect_stdout(io.StringIO()):
            return MODES[mode](model, spec, **options)
    except ConversionError:
        raise
    except Exception as e:  # the TF converter raises many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConversionError(f"{mode} conversion failed: {first}") from e
