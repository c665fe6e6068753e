"""Issue 21's bar: every case of the issue, on the shipped models and a few real images.

Passes when there is no traceback; usage errors exit 2 before any output file exists; calibrate on a
copy of a bundle keeps its contract; bench --limit on PBC reports every class; bench on
android_assets has no failed rows; `edge-wbc models` lists bccd4_int8 and `-m bccd4_int8` works;
`--version` prints the version and the interpreter. Kept fast: --limit, --runs 1, a few images.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import edge_wbc
from edge_wbc.assets import assets_dir
from edge_wbc.cli import app

runner = CliRunner()
ASSETS = assets_dir()


def run(*args, code: int | None = None):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception), r.output)
    assert "Traceback" not in r.output, r.output
    if code is not None:
        assert r.exit_code == code, (args, r.exit_code, r.output)
    return r


@pytest.fixture(scope="module")
def crops(data_root, tmp_path_factory) -> Path:
    """Six BCCD crops (two eosinophils, two lymphocytes, two neutrophils)."""
    d = tmp_path_factory.mktemp("crops")
    for c in ("Eosinophil", "Lymphocyte", "Neutrophil"):
        for f in sorted((data_root / "bccd" / "BCCD_cropped" / c).iterdir())[:2]:
            shutil.copy(f, d / f"{c}_{f.name}")
    return d


@pytest.fixture(scope="module")
def smear(data_root, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("smear")
    shutil.copy(data_root / "bccd" / "BCCD" / "JPEGImages" / "BloodImage_00000.jpg", d)
    return d


# ---- a segmenter where a classifier is wanted (and the reverse): exit 2, nothing written ---------
@pytest.mark.parametrize("seg", ["wbc_unet_int8", "smear_unet_int8.tflite"])
def test_classify_with_a_segmenter_names_the_right_command(seg, crops, tmp_path):
    out = tmp_path / "o.csv"
    r = run("classify", crops, "-m", seg, "--csv", out, code=2)
    assert "is a segmentation model" in r.output and "edge-wbc segment -m" in r.output
    assert not out.exists() and "file,prediction" not in r.output  # no CSV header before the error


def test_count_and_calibrate_refuse_a_segmenter_and_segment_a_classifier(smear, tmp_path):
    r = run("count", smear, "--classifier", "wbc_unet_int8", "--json", tmp_path / "c.json", code=2)
    assert "is a segmentation model" in r.output and not (tmp_path / "c.json").exists()
    r = run("count", smear, "-m", ASSETS / "smear_unet_int8.tflite", code=2)
    assert "is a segmentation model" in r.output
    r = run("calibrate", "wbc_unet_int8", code=2)
    assert "is a segmentation model" in r.output
    r = run("segment", smear, "-m", "bccd4_int8", "--out", tmp_path / "s", code=2)
    assert "is a classification model, not a segmentation model" in r.output and "classify" in r.output
    assert not (tmp_path / "s").exists()


# ---- count's detectors: the field U-Net plus stained nuclei (default), the U-Net alone, the rule alone ----
def test_count_detector_choices_are_in_the_json_and_the_report(smear, tmp_path):
    run("count", smear, "--json", tmp_path / "d.json", code=0)
    d = json.loads((tmp_path / "d.json").read_text())
    assert Path(d["models"]["detector"]).name == "wbc_det_int8.tflite"
    assert Path(d["models"]["detector, fields that fit one window"]).name == "wbc_det128_int8.tflite"
    assert Path(d["models"]["cell segmenter"]).name == "wbc_unet_int8.tflite"
    assert d["settings"]["detection"].endswith("; the field detector, plus the stained nuclei it missed")
    run("count", smear, "--no-nuclei", "--json", tmp_path / "u.json", code=0)
    u = json.loads((tmp_path / "u.json").read_text())
    assert u["settings"]["detection"] == "at the models' training scales (red-cell estimate)"
    run("count", smear, "--detector", "nuclei", "--json", tmp_path / "n.json", "--report", tmp_path / "n.html",
        code=0)
    n = json.loads((tmp_path / "n.json").read_text())
    assert n["models"]["detector"] == "nuclei (rule-based, no model)"
    assert n["settings"]["detection"].endswith("; stained nuclei (rule-based, no model)")
    assert [c["box"] for c in n["images"][0]["cells"]] == [[278, 155, 500, 377]]  # BloodImage_00000's one WBC
    page = (tmp_path / "n.html").read_text()
    assert '<td data-model="detector">nuclei (rule-based, no model)</td>' in page
    assert 'data-sha256="detector"' not in page and 'data-sha256="classifier"' in page


@pytest.mark.parametrize("args, msg", [
    (("--detector", "nuclei", "--tile"), "--detector nuclei works at the models' training scale only: leave out "
                                         "--tile / --no-tile"),
    (("--detector", "nuclei", "--no-tile"), "--detector nuclei works at the models' training scale only"),
    (("--detector", "nuclei", "--no-nuclei"), "--no-nuclei with --detector nuclei leaves no detector"),
    (("--no-nuclei", "--tile"), "--no-nuclei applies to the default field detector only"),
    (("--nuclei", "--no-tile"), "--nuclei applies to the default field detector only"),
    (("--nuclei", "--detector", "smear_unet_int8"), "--nuclei: --detector smear_unet_int8 is not the multi-source "
                                                    "field detector"),
    (("--detector", "nope"), "or 'nuclei', the rule-based stained-nucleus detector"),
])
def test_count_detector_contradictions_are_usage_errors(args, msg, smear, tmp_path):
    r = run("count", smear, *args, "--json", tmp_path / "c.json", code=2)
    err = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and msg in " ".join(r.output.split()), r.output
    assert not (tmp_path / "c.json").exists()


# ---- output paths checked first ---------------------------------------------------------------
def test_table_outputs_that_are_directories_fail_before_any_work(smear, tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    for args, flag in ((("bench", "-m", "bccd4_int8", "--json", d), "--json"),
                       (("count", smear, "--json", d), "--json"), (("count", smear, "--csv", d), "--csv"),
                       (("classify", smear, "--csv", d), "--csv"), (("classify", smear, "--json", d), "--json")):
        r = run(*args, code=2)
        assert f"{flag} {d}: is a directory; give a file name" in r.output
    assert list(d.iterdir()) == []


def test_out_dirs_that_are_files_fail_before_any_work(smear, tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep")
    for args in (("segment", smear), ("count", smear), ("export-android", "bccd4_int8", "--no-eval")):
        r = run(*args, "--out", f, code=2)
        assert f"--out {f}: exists and is a file; --out takes a directory" in r.output
    r = run("segment", smear, "-o", f, code=2)  # -o is --out wherever it exists
    assert "exists and is a file" in r.output
    assert f.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ---- exit codes: missing input 2, 0 images 2, a bad file in a folder 1 --------------------------
def test_missing_and_empty_inputs_are_usage_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    for cmd in (("classify",), ("segment", "--out", out), ("count", "--out", out)):
        r = run(*cmd, empty, code=2)
        assert f"no image files found in {empty} (0 images)" in r.output
        r = run(*cmd, tmp_path / "nope.jpg", code=2)
        assert f"{tmp_path / 'nope.jpg'}: no such file or directory" in r.output
    assert not out.exists()


def test_a_bad_file_in_a_folder_is_exit_1(crops, tmp_path):
    d = tmp_path / "mixed"
    shutil.copytree(crops, d)
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xffnot a jpeg")
    r = run("classify", d, "-m", "bccd4_int8", "--csv", tmp_path / "o.csv", code=1)
    assert "bad.jpg" in r.output
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert len(rows) == 7 and sum(bool(x["error"]) for x in rows) == 1


def test_threads_above_the_core_count_warn_with_the_count(crops):
    n = (os.cpu_count() or 1) + 1
    r = run("classify", crops, "-m", "bccd4_int8", "--threads", n, code=0)
    assert f"--threads {n} is more than this machine's {os.cpu_count()} core(s)" in r.output


# ---- one uncertain rule --------------------------------------------------------------------------
def test_classify_applies_the_models_calibrated_rule(crops, tmp_path):
    from edge_wbc.runtime import TFLiteClassifier, read_rule
    from edge_wbc.tasks.count import SmearCounter

    js = tmp_path / "o.json"
    run("classify", crops, "-m", "bccd4_int8", "--csv", tmp_path / "o.csv", "--json", js, code=0)
    doc = json.loads(js.read_text())
    rule = read_rule(ASSETS / "bccd4_int8.json")
    assert (doc["rule"]["temperature"], doc["rule"]["uncertain_below"]) == (rule.temperature, rule.threshold)
    assert rule.source.endswith("bundle")  # stored once, at the bundle's top level
    clf = TFLiteClassifier(ASSETS / "bccd4_int8.tflite")
    rows = {Path(r["file"]).name: r for r in csv.DictReader((tmp_path / "o.csv").open())}
    for e in doc["images"]:
        raw = clf.predict_file(e["file"])
        q = rule.calibrate(raw[None])[0]
        want = clf.labels[int(q.argmax())] if q.max() >= rule.threshold else "uncertain"
        assert e["prediction"] == want == rows[Path(e["file"]).name]["prediction"]
        assert abs(e["confidence"] - float(q.max())) < 1e-5
    # count uses the same rule object as classify
    sc = SmearCounter(ASSETS / "smear_unet_int8.tflite", ASSETS / "bccd4_int8.tflite")
    assert sc.rule == clf.rule
    # the rule firing: a threshold above every confidence makes every prediction 'uncertain'
    from edge_wbc.runtime.rule import UncertainRule

    q, k = UncertainRule(rule.temperature, 1.01).apply(clf.predict_file(doc["images"][0]["file"]))
    assert k.tolist() == [-1]


def test_calibrate_on_a_bundle_copy_changes_only_the_rule(tmp_path):
    for f in ASSETS.glob("bccd4_int8.*"):
        shutil.copy(f, tmp_path / f.name)
    before = json.loads((tmp_path / "bccd4_int8.json").read_text())
    r = run("calibrate", tmp_path / "bccd4_int8.tflite", code=0)
    assert "temperature" in r.output and "uncertain below" in r.output
    after = json.loads((tmp_path / "bccd4_int8.json").read_text())
    for k in ("format", "sha256", "labels_file", "model_file", "input", "output", "labels", "accuracy_this_file"):
        assert after[k] == before[k], k
    assert {k for k in after if after[k] != before.get(k)} <= {"temperature", "uncertain_threshold",
                                                               "uncertain_threshold_basis"}
    assert "uncertain_below" not in after["model_spec"]["metrics"]  # stored once
    assert 0.5 <= after["uncertain_threshold"] < 1 and 0.5 <= after["temperature"] <= 5
    # and export-android of that copy carries the same rule (with or without --no-eval)
    r = run("export-android", tmp_path / "bccd4_int8.tflite", "--out", tmp_path / "b", "--no-eval", code=0)
    b = json.loads((tmp_path / "b" / "bccd4_int8.json").read_text())
    assert (b["temperature"], b["uncertain_threshold"]) == (after["temperature"], after["uncertain_threshold"])


# ---- bench --------------------------------------------------------------------------------------
def test_bench_limit_is_a_stratified_sample_with_every_class(data_root, tmp_path):
    js = tmp_path / "b.json"
    r = run("bench", "-m", "pbc64_int8", "--limit", 100, "--runs", 1, "--warmup", 0, "--json", js, code=0)
    rep = json.loads(js.read_text())
    s = rep["limit_sample"]
    assert rep["n"] == 100 and s["kind"] == "stratified" and s["of"] == 3415 and s["seed"] == 0
    assert "stratified sample of 100 of 3415, seed 0" in r.output
    recall = rep["rows"][0]["per_class_recall"]
    assert len(recall) == 8 and sum(s["per_class"].values()) == 100
    assert all(v >= 1 for v in s["per_class"].values())
    assert rep["rows"][0]["accuracy"] > 0.9  # pbc64_int8 is 0.988 on the full split


def test_bench_android_assets_groups_by_dataset_without_failed_rows(data_root, tmp_path):
    js = tmp_path / "b.json"
    r = run("bench", "--models", ASSETS, "--limit", 8, "--runs", 1, "--warmup", 0, "--json", js)
    rep = json.loads(js.read_text())
    assert r.exit_code == 0, r.output
    assert [row["status"] for row in rep["rows"]] == ["ok"] * len(rep["rows"]) and len(rep["rows"]) == 16
    groups = {g["group"]: g for g in rep["groups"]}
    assert set(groups) == {"bloodmnist", "bccd2", "bccd4", "pbc128 128x128", "pbc128 64x64",
                           "pbc128 112x112", "pbc128,bccd,wbcseg"}
    assert groups["pbc128,bccd,wbcseg"]["reference"] == "keras"  # the field model: wbc_field.keras
    assert groups["bloodmnist"]["reference"] == "keras"
    assert groups["bccd4"]["reference"] == "bccd4_float16.tflite"
    assert all(g["reference"] for g in rep["groups"]) and "reference: None" not in r.output
    assert sorted(s["variant"] for s in rep["skipped"]) == ["smear_unet_int8.tflite", "wbc_det128_int8.tflite",
                                                            "wbc_det_int8.tflite", "wbc_unet_int8.tflite"]
    assert "skipped smear_unet_int8.tflite: segmentation model" in r.output


# ---- shipped models by name, version, help, noise ---------------------------------------------------
def test_models_lists_the_shipped_models_and_short_names_work(crops):
    r = run("models", code=0)
    for s in ("bccd4_int8", "wbc_unet_int8", "classification", "segmentation", "bccd4: BCCD WBC crops", "0.8939",
              "registered architectures", "wbcnet"):
        assert s in r.output, s
    r = run("classify", crops, "-m", "bccd4_int8", code=0)
    rows = list(csv.DictReader(r.stdout.splitlines()))
    assert len(rows) == 6 and {x["prediction"] for x in rows} <= {"eosinophil", "lymphocyte", "monocyte",
                                                                 "neutrophil", "uncertain"}
    r = run("classify", crops, "-m", "bccd4_nope", code=2)
    assert "bccd4_nope: no such model file" in r.output and "bccd4_int8" in r.output


def test_the_hint_when_inputs_are_far_from_the_training_images(crops, smear):
    r = run("classify", crops, "-m", "bloodmnist_int8", code=0)  # BCCD crops to the BloodMNIST (PBC) model
    assert "hint: bloodmnist_int8 was trained on bloodmnist crops (28-363 px); these inputs are unlike them in " \
           "colour and contrast" in r.output
    assert "try -m bccd4_int8" in r.output
    r = run("classify", smear, "-m", "bccd4_int8", code=0)  # a whole smear field to a crop classifier
    assert "640 px wide fields" in r.output and "edge-wbc count" in r.output
    r = run("classify", crops, "-m", "bccd4_int8", code=0)
    assert "hint:" not in r.output


def test_no_hint_for_pbc_cells_on_the_bloodmnist_model(pbc_files):
    files = [f for fs in pbc_files.values() for f in fs[:2]]  # BloodMNIST is PBC downsampled: the same look
    r = run("classify", *files, "-m", "bloodmnist_int8", code=0)
    assert "hint:" not in r.output


def test_version_prints_the_version_and_the_interpreter():
    from edge_wbc.runtime import interpreter_backend

    _, backend, ver = interpreter_backend()
    r = run("--version", code=0)
    assert f"edge-wbc {edge_wbc.__version__}" in r.output and f"{backend} {ver}" in r.output


def _commands():
    root = typer.main.get_command(app)
    ctx = click.Context(root)
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                yield f"{name} {sub}", cmd.get_command(ctx, sub)
        else:
            yield name, cmd


def test_one_meaning_per_flag_and_help_on_every_io_option():
    for name, cmd in _commands():
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.hidden:
                continue
            if "-m" in p.opts:
                assert p.name == "model", (name, p.opts)  # -m is the model everywhere
            if "--mode" in p.opts:
                assert p.opts == ["--mode"], (name, p.opts)
            if "-o" in p.opts:
                assert "--out" in p.opts, (name, p.opts)  # -o is a folder (--out) where it exists
            if "--threshold" in p.opts:
                pytest.fail(f"{name}: --threshold is ambiguous; each command names its threshold")
            if set(p.opts) & {"--json", "--csv", "--skip-bad", "--warmup", "--threads", "--out"}:
                assert p.help, (name, p.opts)
        r = run(*name.split(), "--help", code=0)
        assert "<bool>" not in r.output and "{paths}" not in r.output, name
    r = run("classify", "--help", code=0)
    assert "stdout" in r.output


def test_library_logs_only_with_v_and_train_names_checked_before_tensorflow(crops):
    f = next(iter(sorted(crops.iterdir())))
    env = {**os.environ, "PYTHONPATH": str(Path(edge_wbc.__file__).parents[1])}
    p = subprocess.run([sys.executable, "-m", "edge_wbc", "classify", str(f), "-m", "bccd4_int8"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "INFO:" not in p.stderr and "XNNPACK" not in p.stderr, p.stderr
    code = ("import sys; from typer.testing import CliRunner; from edge_wbc.cli import app; "
            "r = CliRunner().invoke(app, ['train', 'wbcnt', '--out', 'x']); "
            "print(r.exit_code, 'tensorflow' in sys.modules); print(r.output)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    first, rest = p.stdout.split("\n", 1)
    assert first == "2 False" and "unknown model 'wbcnt': valid choices are" in rest, p.stdout + p.stderr


def test_count_overlays_are_written_and_no_temp_files_are_left(smear, tmp_path):
    out = tmp_path / "ann"
    run("count", smear, "--out", out, "--csv", tmp_path / "c.csv", code=0)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["BloodImage_00000.count.jpg"]
    from PIL import Image

    with Image.open(out / files[0]) as im:
        assert im.size == (640, 480)
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert int(rows[0]["cells"]) >= 1 and np.isclose(sum(int(rows[0][k]) for k in
                                                          ("eosinophil", "lymphocyte", "monocyte", "neutrophil",
                                                           "uncertain")), int(rows[0]["cells"]))
