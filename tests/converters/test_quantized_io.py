"""Quantized I/O end to end: `convert --io int8`, and a model whose input and output zero points are not 0
and whose input scale is not 1, each run by the runtime on real images and compared with the float model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.runtime import TFLiteClassifier

N = 200  # real BloodMNIST val images


@pytest.fixture(scope="module")
def work(tiny_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("qio")
    for f in tiny_model_dir.iterdir():
        if f.is_file() and f.suffix in (".keras", ".json"):
            shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="module")
def float_ref(work, bloodmnist):
    from edge_wbc.converters.pipeline import load_keras
    from edge_wbc.runtime.probs import keras_probs
    from edge_wbc.spec import ModelSpec

    val = bloodmnist.split("val").head(N)
    return val, keras_probs(load_keras(work), val.images, ModelSpec.load(work))


def _agree(clf, val, ref):
    p = clf.predict(val.images)
    return float((p.argmax(1) == ref.argmax(1)).mean()), float(np.abs(p - ref).max()), p


def test_convert_io_int8_end_to_end(work, data_root, float_ref):
    r = CliRunner().invoke(app, ["convert", str(work), "--mode", "int8", "--io", "int8", "--calib", "100",
                                 "--allow-chance", "--min-agreement", "0", "--name", "int8_io8",
                                 "--data", str(data_root)])
    assert r.exit_code == 0, r.output
    clf = TFLiteClassifier(work / "int8_io8.tflite")
    assert clf.tensor_types() == {"input": "int8", "output": "int8"}
    s_in, zp_in = clf.input["quantization"]
    s_out, zp_out = clf.output["quantization"]
    assert (s_in, zp_in) == (pytest.approx(1.0), -128)  # raw pixels shifted into int8
    assert (s_out, zp_out) == (pytest.approx(1 / 256), -128)  # softmax in int8
    val, ref = float_ref
    agree, gap, p = _agree(clf, val, ref)
    assert agree >= 0.95 and gap < 0.15, (agree, gap)
    assert np.allclose(p.sum(1), 1.0, atol=0.05)
    rep = json.loads((work / "int8_io8.report.json").read_text())
    assert rep["io"] == "int8" and rep["input_dtype"] == "int8" and rep["agreement"] >= 0.95


def test_nonzero_zero_point_and_input_scale_not_one(work, data_root, float_ref, monkeypatch):
    """Calibration inputs spanning -100 .. 410 give the int8 input scale 2 and zero point -78."""
    import edge_wbc.converters.modes as modes
    from edge_wbc.converters import convert_model_dir

    def wide(calib_images):
        x = np.array(calib_images, dtype=np.float32, copy=True)
        x[0, 0, 0, :] = -100.0
        x[0, 0, 1, :] = 410.0
        return x

    monkeypatch.setattr(modes, "pin_pixel_range", wide)
    convert_model_dir(work, "int8", data=data_root, calib=100, allow_chance=True, min_agreement=0.0,
                      out_name="int8_wide", log=lambda s: None, io="int8")
    clf = TFLiteClassifier(work / "int8_wide.tflite")
    s_in, zp_in = clf.input["quantization"]
    assert s_in == pytest.approx(2.0, rel=1e-3) and zp_in == -78
    s_out, zp_out = clf.output["quantization"]
    assert zp_out != 0 and s_out != 1.0
    val, ref = float_ref
    agree, gap, _ = _agree(clf, val, ref)
    assert agree >= 0.9 and gap < 0.25, (agree, gap)
    # the quantized input is what the scale and zero point say: q = round(x / 2) - 78
    q = clf.quantize_input(val.images[:1])
    assert q.dtype == np.int8 and np.array_equal(q, np.clip(np.round(val.images[:1] / 2.0) - 78, -128, 127))
