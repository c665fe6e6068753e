"""export-android for segmenters: the bundle, its checks, and MediaPipe Tasks' ImageSegmenter loading it.

The MediaPipe test runs in a Python that has mediapipe (this one, or $EDGE_WBC_MEDIAPIPE_PYTHON, which CI
sets to a small venv beside the train one); it skips only when there is none, as tests/bench/test_clients.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc.bench.clients import MEDIAPIPE_ENV, mediapipe_python
from edge_wbc.cli import app
from edge_wbc.errors import ModelError
from edge_wbc.export import tflite_metadata as tm
from edge_wbc.export.android import BUNDLE_FORMAT, probe_inputs, raw_outputs
from edge_wbc.runtime import TFLiteSegmenter
from edge_wbc.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "android_assets"
runner = CliRunner()
HAVE_MP = bool(os.environ.get(MEDIAPIPE_ENV)) or importlib.util.find_spec("mediapipe") is not None


@pytest.fixture()
def seg_dir(tmp_path):
    """A model dir as `edge-wbc convert` leaves it: int8.tflite (the shipped cell segmenter) + model.json."""
    d = tmp_path / "unet"
    d.mkdir()
    shutil.copy(ASSETS / "wbc_unet_int8.tflite", d / "int8.tflite")
    ModelSpec.load(ASSETS / "wbc_unet_int8.json").save(d / "model.json")
    return d


def test_export_segmenter_dir(seg_dir, tmp_path):
    out = tmp_path / "bundle"
    r = runner.invoke(app, ["export-android", str(seg_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["wbcseg_int8.json", "wbcseg_int8.labels.txt", "wbcseg_int8.tflite"]
    f = out / "wbcseg_int8.tflite"
    content, src = f.read_bytes(), (seg_dir / "int8.tflite").read_bytes()
    b = json.loads(f.with_suffix(".json").read_text())
    assert b["format"] == BUNDLE_FORMAT and b["task"] == "segmentation" and b["name"] == "wbcseg_int8"
    assert b["sha256"] == hashlib.sha256(content).hexdigest()
    assert b["source"]["sha256"] == hashlib.sha256(src).hexdigest()
    assert b["labels"] == ["wbc", "nucleus"] == (out / "wbcseg_int8.labels.txt").read_text().split()
    assert b["model_spec"] == ModelSpec.load(seg_dir / "model.json").to_dict()
    assert b["output"]["threshold"] == 0.5 and b["output"]["channels"] == "independent"
    assert b["dataset"]["license"].startswith("GPL-3.0") and "Zheng" in b["dataset"]["credit"]
    assert "uncertain_threshold" not in b and "wbc/all" in b["metrics"]
    assert "| wbcseg_int8.tflite" in r.output.replace("│", "|")
    # the metadata names the labels where MediaPipe looks (the output's TENSOR_AXIS_LABELS file)
    assert tm.read_labels(content) == ("wbc", "nucleus")
    assert tm.parse_segmenter_options(tm.read_metadata(content).custom_metadata[0].data) == "NONE"
    # same computation: raw outputs bit-identical on fixed inputs, and the runtime finds the nested spec
    seg = TFLiteSegmenter(f)
    x = probe_inputs(seg, n=3)
    assert np.array_equal(raw_outputs(src, x), raw_outputs(content, x))
    assert seg.spec == ModelSpec.load(seg_dir / "model.json")


def test_export_segmenter_errors(seg_dir, tmp_path):
    spec = ModelSpec.load(seg_dir / "model.json")
    spec.replace(labels=("wbc",)).save(seg_dir / "model.json")  # the model has 2 channels
    r = runner.invoke(app, ["export-android", str(seg_dir), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "model has 2 outputs but model.json lists 1 labels" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()
    with pytest.raises(ModelError, match=r"^invalid segmenter activation 'RELU': valid choices are NONE, SIGMOID, "
                                         r"SOFTMAX$"):
        tm.build_segmenter_options("RELU")
    md = tm.ModelMetadata("m", custom_metadata=(tm.CustomMetadata("X", b"1"),))
    with pytest.raises(ModelError, match="custom metadata needs min_parser_version 1.5.0, not 1.0.0"):
        tm.build_metadata(md)


@pytest.mark.skipif(not HAVE_MP, reason=f"mediapipe not importable here and {MEDIAPIPE_ENV} not set")
def test_segmenter_bundle_loads_in_mediapipe_image_segmenter(tmp_path, data_root):
    out = tmp_path / "bundle"
    r = runner.invoke(app, ["export-android", str(ASSETS / "wbc_unet_int8.tflite"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    images = [str(data_root / "wbc_seg" / "dataset1" / f"{i:03d}.bmp") for i in (1, 2, 3)]
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "mediapipe_segmenter_check.py"),
                        str(out / "wbc_unet_int8.tflite"), *images, "--mediapipe-python", mediapipe_python()],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["mediapipe_labels"] == ["wbc", "nucleus"]  # read from the bundle's metadata
    assert res["images"] == 3 and res["pixels"] > 3 * 10_000
    assert set(res["differing_share"]) == {"wbc", "nucleus"}
    assert all(v < 0.01 for v in res["differing_share"].values()), res  # masks agree on > 99 % of pixels
