"""Bench clients: LiteRT CompiledModel and MediaPipe Tasks rows beside edge-wbc's, and resize-filter rows."""

import importlib.util
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_wbc.bench.clients import MEDIAPIPE_ENV, parse_clients, parse_resize
from edge_wbc.cli import app
from edge_wbc.errors import ModelError

ASSETS = Path(__file__).resolve().parents[2] / "android_assets"
runner = CliRunner()
HAVE_MP = bool(os.environ.get(MEDIAPIPE_ENV)) or importlib.util.find_spec("mediapipe") is not None


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def pbc_tree(tmp_path_factory, data_root):
    """train/val/test with the 8 BloodMNIST classes, 2 real 128 px PBC test JPEGs per class in test."""
    root = tmp_path_factory.mktemp("pbc")
    for d in sorted((data_root / "pbc128" / "test").iterdir()):
        for s, files in (("train", sorted(d.glob("*.jpg"))[:1]), ("val", sorted(d.glob("*.jpg"))[1:2]),
                         ("test", sorted(d.glob("*.jpg"))[2:4])):
            (root / s / d.name).mkdir(parents=True)
            for f in files:
                shutil.copy(f, root / s / d.name / f.name)
    return root


def test_parse_errors():
    assert parse_clients("mediapipe") == ("edge-wbc", "mediapipe")
    with pytest.raises(ModelError, match=r"unknown client 'tflite'.*edge-wbc, mediapipe, compiled"):
        parse_clients("edge-wbc,tflite")
    assert parse_resize("bilinear,area") == ("bilinear", "area")
    with pytest.raises(ModelError, match=r"unknown filter 'cubic'.*bicubic, bilinear, nearest"):
        parse_resize("cubic")


def test_compiled_row_and_mediapipe_missing(tmp_path, data_root, monkeypatch):
    # a Python that cannot import mediapipe (no site-packages): the row fails with the install hint
    fake = tmp_path / "python-without-mediapipe"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(MEDIAPIPE_ENV, str(fake))
    out = tmp_path / "b.json"
    r = run("bench", "-m", ASSETS / "bloodmnist_int8.tflite", "--limit", 40, "--runs", 5, "--warmup", 1,
            "--clients", "edge-wbc,mediapipe,compiled", "--data", data_root, "--json", out)
    assert r.exit_code == 1, r.output  # a failed variant fails the run ...
    rows = {x["variant"]: x for x in json.loads(out.read_text())["rows"]}
    mp = rows["bloodmnist_int8.tflite (mediapipe)"]
    assert mp["status"] == "failed" and "pip install 'edge-wbc[clients]'" in mp["error"] and str(fake) in mp["error"]
    own, comp = rows["bloodmnist_int8.tflite"], rows["bloodmnist_int8.tflite (compiled)"]
    assert own["status"] == comp["status"] == "ok"  # ... the others still ran
    assert comp["client"] == "compiled" and comp["client_agreement"] == 1.0  # identical top-1 on int8
    assert comp["accuracy"] == own["accuracy"] and comp["latency_ms"]["p50"] > 0
    assert comp["interpreter"].endswith("CompiledModel") and own["interpreter"].startswith("ai_edge_litert")
    assert "INFO: [" not in r.output  # LiteRT's own log lines stay silent without -v


def test_resize_rows(tmp_path, pbc_tree):
    out = tmp_path / "r.json"
    r = run("bench", "-m", ASSETS / "pbc64_int8.tflite", "--dataset", pbc_tree, "--runs", 3, "--warmup", 1,
            "--resize", "bilinear,nearest", "--json", out)
    assert r.exit_code == 0, r.output
    rows = {x["variant"]: x for x in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"pbc64_int8.tflite", "pbc64_int8.tflite (resize=bilinear)",
                         "pbc64_int8.tflite (resize=nearest)"}
    for v in ("bilinear", "nearest"):
        row = rows[f"pbc64_int8.tflite (resize={v})"]
        assert row["resize"] == v and row["status"] == "ok" and 0 <= row["client_agreement"] <= 1


@pytest.mark.skipif(not HAVE_MP, reason=f"mediapipe not importable here and {MEDIAPIPE_ENV} not set")
def test_mediapipe_row(tmp_path, pbc_tree):
    out = tmp_path / "m.json"
    r = run("bench", "-m", ASSETS / "pbc64_int8.tflite", "--dataset", pbc_tree, "--runs", 3, "--warmup", 1,
            "--clients", "mediapipe", "--json", out)
    assert r.exit_code == 0, r.output
    rows = {x["variant"]: x for x in json.loads(out.read_text())["rows"]}
    mp = rows["pbc64_int8.tflite (mediapipe)"]
    assert mp["status"] == "ok" and mp["client"] == "mediapipe" and mp["latency_ms"]["p50"] > 0
    assert mp["client_agreement"] >= 0.8  # 16 JPEGs: MediaPipe decodes and resizes them itself
    assert abs(mp["accuracy"] - rows["pbc64_int8.tflite"]["accuracy"]) <= 0.2


def test_mediapipe_rois_are_the_wbc_square_kept_inside_the_image(data_root):
    from edge_wbc.bench.clients import mediapipe_rois
    from edge_wbc.preprocess import load_image
    from edge_wbc.runtime.wbccrop import crop_segmenter, crop_square, find_wbc
    from edge_wbc.spec import ModelSpec

    files = [str(f) for f in sorted((data_root / "pbc128" / "test" / "neutrophil").glob("*.jpg"))[:3]]
    assert mediapipe_rois(files, ModelSpec.load(ASSETS / "pbc64_int8.json")) is None  # no WBC crop: whole image
    spec = ModelSpec.load(ASSETS / "wbc_field_int8.json")
    rois = mediapipe_rois(files, spec)
    seg = crop_segmenter(spec.crop_model)
    for f, (x0, t, r, b) in zip(files, rois):
        img = load_image(f)
        W, H = img.size
        assert 0 <= x0 < r <= 1 and 0 <= t < b <= 1 and (r - x0) * W == pytest.approx((b - t) * H)  # a square
        left, top, side = crop_square((W, H), find_wbc(seg, img).box, spec.crop_ratio)
        assert (r - x0) * W == pytest.approx(min(side, W, H))
        if 0 <= left and 0 <= top and left + side <= W and top + side <= H:  # inside: exactly edge-wbc's square
            assert (x0 * W, t * H) == pytest.approx((left, top))
    # a WBC at the top-left corner: the 1.5x square would leave the image; it is shifted back inside
    from edge_wbc.runtime import wbccrop

    real = wbccrop.find_wbc
    try:
        wbccrop.find_wbc = lambda seg, img: wbccrop.WBCFind(True, (0.0, 0.0, 40.0, 40.0), 0.1, 1, 0.9)
        (roi,) = mediapipe_rois(files[:1], spec)
    finally:
        wbccrop.find_wbc = real
    assert roi == pytest.approx([0, 0, 60 / 128, 60 / 128])  # crop_square gives (-10, -10, 60)


@pytest.mark.skipif(not HAVE_MP, reason=f"mediapipe not importable here and {MEDIAPIPE_ENV} not set")
def test_mediapipe_worker_passes_each_files_region_of_interest(tmp_path, data_root):
    import numpy as np

    from edge_wbc.bench.clients import run_mediapipe

    files = [str(f) for f in sorted((data_root / "pbc128" / "test" / "neutrophil").glob("*.jpg"))[:2]]

    def probs(rois, name):
        job = {"model": str(ASSETS / "wbc_field_int8.tflite"), "files": files, "num_classes": 5, "threads": 1,
               "runs": 2, "warmup": 1, "out": str(tmp_path / f"{name}.json"), "rois": rois}
        (tmp_path / f"{name}.job.json").write_text(json.dumps(job))
        res = run_mediapipe(tmp_path / f"{name}.job.json", 120)
        assert res["status"] == "ok", res
        return np.load(res["probs_file"])

    none, whole = probs(None, "none"), probs([[0, 0, 1, 1]] * 2, "whole")
    corner = probs([[0, 0, 0.3, 0.3]] * 2, "corner")  # a corner of background, no WBC in it
    np.testing.assert_allclose(whole, none, atol=1e-6)  # the whole image as ROI is no ROI
    assert np.abs(corner - none).max() > 0.1


def test_resize_rows_refuse_the_cached_crops_of_a_crop_model():
    r = run("bench", "-m", ASSETS / "wbc_field_int8.tflite", "--resize", "bilinear", "--runs", 1)
    assert r.exit_code == 2, r.output
    assert "--resize re-cuts each image from its file" in r.output and "pbc128,bccd,wbcseg" in r.output
