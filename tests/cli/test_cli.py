import csv
import json
import shutil
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from edge_wbc.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_classify_folder_writes_csv(tiny_converted, pbc_files, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for c, fs in pbc_files.items():
        for f in fs[:2]:
            shutil.copy(f, d / f"{c} {f.name}")  # names with spaces
    out = tmp_path / "out.csv"
    r = run("classify", d, "--model", tiny_converted / "int8.tflite", "--csv", out)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    labels = json.loads((tiny_converted / "model.json").read_text())["labels"]
    assert list(rows[0].keys()) == ["file", "prediction", "confidence", *labels, "flag", "error"]
    assert len(rows) == 16
    for row in rows:  # the tiny model has no calibrated rule: temperature 1, uncertain below 0.5
        probs = np.array([float(row[c]) for c in labels])
        assert row["prediction"] == (labels[int(probs.argmax())] if probs.max() >= 0.5 else "uncertain")
        assert abs(float(row["confidence"]) - probs.max()) < 1e-6 and abs(probs.sum() - 1) < 0.02


def test_classify_reports_bad_files_and_exit_codes(tiny_converted, pbc_files, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(pbc_files["monocyte"][0], d / "good.jpg")
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    out = tmp_path / "o.csv"
    r = run("classify", d, "--model", tiny_converted / "int8.tflite", "--csv", out)
    assert r.exit_code == 1
    assert "bad.jpg: cannot decode image" in r.output or "bad.jpg: not a recognised image" in r.output
    assert "Traceback" not in r.output
    rows = {row["file"].rsplit("/", 1)[-1]: row for row in csv.DictReader(out.open())}
    assert rows["good.jpg"]["prediction"] and rows["good.jpg"]["error"] == ""
    assert rows["bad.jpg"]["prediction"] == "" and "bad.jpg" in rows["bad.jpg"]["error"]
    r = run("classify", d, "--model", tiny_converted / "int8.tflite", "--csv", out, "--skip-bad")
    assert r.exit_code == 0


def test_usage_errors_exit_2_with_choices(tiny_model_dir):
    r = run("convert", tiny_model_dir, "--mode", "int4")
    assert r.exit_code == 2 and "int4" in r.output and "float32" in r.output and "int16x8" in r.output
    r = run("bench", "--threads", "one")
    assert r.exit_code == 2 and "comma-separated integers" in r.output
    r = run("classify", "x.jpg", "--model", tiny_model_dir / "nope.tflite")
    assert r.exit_code == 2 and "no such model file" in r.output


def test_train_arg_and_init_errors_name_the_choices(tiny_model_dir, tmp_path):
    r = run("train", "unet", "--dataset", "seg", "--arg", "bse=12", "--out", tmp_path / "u")
    assert r.exit_code == 2 and "'bse'" in r.output and "base=8, depth=4, dropout=0.2" in r.output
    r = run("train", "unet", "--dataset", "seg", "--arg", "base", "--out", tmp_path / "u")
    assert r.exit_code == 2 and "invalid --arg 'base': expected KEY=VALUE" in r.output
    r = run("train", "tiny", "--init", tmp_path / "nowhere", "--limit", 50, "--epochs", 1, "--out", tmp_path / "t")
    assert r.exit_code == 2 and "nowhere: no model.keras there" in r.output
    assert not (tmp_path / "u").exists()


def test_data_info_and_check(data_root, tmp_path):
    r = run("data", "info", "--data", data_root)
    assert r.exit_code == 0 and "bloodmnist" in r.output and "yes" in r.output
    r = run("data", "info", "--data", tmp_path / "nope")
    assert r.exit_code == 2 and "no such directory" in r.output


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "edge_wbc", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "classify" in r.stdout and "bench" in r.stdout
