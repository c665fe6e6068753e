"""`edge-wbc bench` with no data and no TensorFlow: the shipped .tflite rows on the embedded sample, the
float16 row as the reference, both said aloud; and `edge-wbc --version`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edge_wbc import assets
from edge_wbc.cli import app


def test_default_models_leave_the_keras_row_out_without_tensorflow(monkeypatch):
    monkeypatch.setattr(assets, "tensorflow_available", lambda: False)
    names = [p.name for p in assets.default_bench_models()]
    assert names == ["bloodmnist_float16.tflite", "bloodmnist_int8.tflite"]
    monkeypatch.setattr(assets, "tensorflow_available", lambda: True)
    assert [p.name for p in assets.default_bench_models()][0] == "bloodmnist.keras"


def test_bench_on_the_sample_without_tensorflow(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_WBC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "tensorflow_available", lambda: False)
    out = tmp_path / "b.json"
    r = CliRunner().invoke(app, ["bench", "--runs", "5", "--warmup", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["n"] == 320 and rep["sample"]["name"] == "bloodmnist" and rep["sample"]["license"] == "CC BY 4.0"
    assert [(x["variant"], x["status"]) for x in rep["rows"]] == [("bloodmnist_float16.tflite", "ok"),
                                                                   ("bloodmnist_int8.tflite", "ok")]
    assert rep["reference"] == "bloodmnist_float16.tflite"
    assert rep["reference_note"].startswith("reference: bloodmnist_float16.tflite (float16 TFLite), not the Keras")
    i8 = rep["rows"][1]
    assert i8["accuracy"] > 0.9 and i8["agreement"] > 0.95  # the shipped int8 model on 320 real test images
    assert "SAMPLE DATA: bench runs on the embedded sample" in r.output and "n=320" in r.output
    assert "note: reference: bloodmnist_float16.tflite" in r.output


def test_version_names_the_interpreter():
    from edge_wbc import __version__
    from edge_wbc.runtime import interpreter_backend

    _, backend, version = interpreter_backend()
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0
    assert r.output.strip() == f"edge-wbc {__version__}, interpreter {backend} {version}"
