"""Input quantization and output dequantization with non-zero zero points and scales != 1 (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_wbc.runtime.model import TFLiteModel


def _model(in_dtype, in_q, out_dtype=np.float32, out_q=(0.0, 0)):
    m = object.__new__(TFLiteModel)
    m.input_dtype, m.output_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    m.input, m.output = {"quantization": in_q}, {"quantization": out_q}
    return m


def test_quantize_input_int8_with_zero_point_and_scale():
    m = _model(np.int8, (2.0, -3))
    q = m.quantize_input(np.array([0, 2, 100, 254, 255], np.uint8))
    # round(x / 2 - 3), clipped to int8
    assert q.dtype == np.int8 and q.tolist() == [-3, -2, 47, 124, 124]
    m = _model(np.int8, (0.5, 10))
    assert m.quantize_input(np.array([0, 1, 50, 100], np.uint8)).tolist() == [10, 12, 110, 127]


def test_quantize_input_uint8_zero_point_and_raw_passthrough():
    x = np.array([0, 3, 200, 255], np.uint8)
    assert _model(np.uint8, (1.0, 0)).quantize_input(x) is x  # raw pixels are the quantized values
    assert _model(np.uint8, (1.0, 5)).quantize_input(x).tolist() == [5, 8, 205, 255]
    assert _model(np.uint8, (0.25, 0)).quantize_input(np.array([0, 1, 60], np.uint8)).tolist() == [0, 4, 240]
    assert _model(np.int8, (1.0, -128)).quantize_input(x).tolist() == [-128, -125, 72, 127]
    # scale 0 (unquantized integer input): values clipped and cast
    q0 = _model(np.int8, (0.0, 0)).quantize_input(np.array([-300, 5, 300]))
    assert q0.dtype == np.int8 and q0.tolist() == [-128, 5, 127]
    # quantized values below the type's minimum are clipped, not wrapped
    assert _model(np.int8, (1.0, -200)).quantize_input(np.array([0, 100, 255], np.uint8)).tolist() == [-128, -100, 55]


def test_quantize_input_float_models_take_pixels_as_floats():
    q = _model(np.float32, (0.0, 0)).quantize_input(np.array([0, 255], np.uint8))
    assert q.dtype == np.float32 and q.tolist() == [0.0, 255.0]


def test_dequantize_output_with_zero_point_and_scale():
    m = _model(np.float32, (0.0, 0), np.int8, (1 / 256, -128))
    y = m.dequantize_output(np.array([-128, 0, 127], np.int8))
    assert y.dtype == np.float32 and y.tolist() == pytest.approx([0.0, 0.5, 255 / 256])
    m = _model(np.float32, (0.0, 0), np.uint8, (0.5, 10))
    assert m.dequantize_output(np.array([10, 12, 0], np.uint8)).tolist() == [0.0, 1.0, -5.0]
    f = _model(np.float32, (0.0, 0), np.float16, (0.0, 0)).dequantize_output(np.array([0.25], np.float16))
    assert f.dtype == np.float32 and f.tolist() == [0.25]


def test_quantize_dequantize_round_trip_within_half_a_step(rng):
    m = _model(np.int8, (0.75, 7), np.int8, (0.75, 7))
    x = rng.integers(0, 80, 50).astype(np.uint8)  # inside the int8 range: 80 / 0.75 + 7 < 127
    back = m.dequantize_output(m.quantize_input(x))
    assert np.abs(back - x).max() <= 0.375 + 1e-6


def test_quantize_input_divides_in_float32_like_the_interpreter():
    # a float32 scale a QAT model can learn; 246 / scale is just below a .5 tie in float32 (142.5 - 8e-6)
    # and just above it in float64: the interpreter's Quantize op computes in float32
    scale = float(np.float32(1.7263157367706299))
    x = np.array([246], np.uint8)
    q32 = int(np.round(np.float32(246) / np.float32(scale)))
    assert q32 != int(np.round(246 / scale))  # the case this test is about
    assert _model(np.uint8, (scale, 0)).quantize_input(x).tolist() == [q32]
