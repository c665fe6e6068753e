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


def _representative(calib_images: np.ndarray | None):
    if calib_images is None or len(calib_images) == 0:
        raise ConversionError("this mode needs calibration images (--calib N from the train split), got none")

    def gen():
        for i in range(len(calib_images)):
            yield [calib_images[i : i + 1].astype(np.float32)]

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
