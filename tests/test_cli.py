import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc.bench import check_gates, compare
from edge_wbc.cli import app
from edge_wbc.data import BLOODMNIST_LABELS

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
    r = run("classify", d, "--model", tiny_converted / "int8.tflite", "-o", out)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    labels = json.loads((tiny_converted / "model.json").read_text())["labels"]
    assert list(rows[0].keys()) == ["file", "prediction", "confidence", *labels, "error"]
    assert len(rows) == 16
    for row in rows:
        probs = np.array([float(row[c]) for c in labels])
        assert row["prediction"] == labels[int(probs.argmax())]
        assert abs(float(row["confidence"]) - probs.max()) < 1e-6 and abs(probs.sum() - 1) < 0.02


def test_classify_reports_bad_files_and_exit_codes(tiny_converted, pbc_files, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(pbc_files["monocyte"][0], d / "good.jpg")
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    out = tmp_path / "o.csv"
    r = run("classify", d, "--model", tiny_converted / "int8.tflite", "-o", out)
    assert r.exit_code == 1
    assert "bad.jpg: cannot decode image" in r.output or "bad.jpg: not a recognised image" in r.output
    assert "Traceback" not in r.output
    rows = {row["file"].rsplit("/", 1)[-1]: row for row in csv.DictReader(out.open())}
    assert rows["good.jpg"]["prediction"] and rows["good.jpg"]["error"] == ""
    assert rows["bad.jpg"]["prediction"] == "" and "bad.jpg" in rows["bad.jpg"]["error"]
    r = run("classify", d, "--model", tiny_converted / "int8.tflite", "-o", out, "--skip-bad")
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


@pytest.fixture(scope="module")
def bench_dir(tiny_converted, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    for f in tiny_converted.iterdir():
        if f.suffix in (".keras", ".tflite", ".json"):
            shutil.copy(f, d / f.name)
    (d / "broken.tflite").write_bytes(b"\x00" * 64)  # a variant that fails to load
    shutil.copy(d / "model.json", d / "broken.json")
    return d


@pytest.fixture(scope="module")
def bench_report(bench_dir, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bo")
    r = run("bench", "--models", bench_dir, "--limit", 60, "--runs", 30, "--warmup", 3, "--threads", "1,2",
            "--data", data_root, "--json", out / "b.json", "--markdown", out / "b.md", "--csv", out / "b.csv", "--plot", out / "b.png")
    return r, out


def test_bench_json_schema(bench_report):
    r, out = bench_report
    assert r.exit_code == 1, r.output  # the broken variant makes the run fail ...
    rep = json.loads((out / "b.json").read_text())
    assert rep["dataset"] == "bloodmnist" and rep["split"] == "test" and rep["n"] == 60 and rep["reference"] == "keras"
    assert {"cpu", "cores", "interpreter", "interpreter_version"} <= set(rep["device"])
    rows = {(row["variant"], row["threads"]): row for row in rep["rows"]}
    assert set(rows) == {(v, t) for v in ("keras", "broken.tflite", "float16.tflite", "float32.tflite", "int8.tflite") for t in (1, 2)}
    for (v, t), row in rows.items():
        if v == "broken.tflite":
            assert row["status"] == "failed" and "not a TFLite model" in row["error"] and row["accuracy"] is None
            continue
        assert row["status"] == "ok" and row["error"] is None  # ... but the others still ran
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1 and 0 <= row["agreement"] <= 1
        assert row["size_bytes"] > 0 and 0 < row["gzip_bytes"] and row["throughput_ips"] > 0
        lat = row["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and lat["n"] == 30
        assert row["init_ms"] > 0 and row["first_ms"] > 0 and row["peak_rss_mb"] > 10
        assert row["macs"] > 0 and row["params"] > 0 and row["gmac_per_s"] > 0 and row["roof_pct"] is None
        assert list(row["per_class_recall"]) == list(BLOODMNIST_LABELS)
    assert rows[("keras", 1)]["agreement"] == 1.0 and rows[("keras", 1)]["device"] == "CPU"
    assert rows[("float32.tflite", 1)]["agreement"] >= 0.99
    assert rows[("float32.tflite", 1)]["max_prob_gap"] < 1e-3
    # the same model, the same params and MACs counted from both graphs
    assert rows[("keras", 1)]["macs"] == rows[("float32.tflite", 1)]["macs"]
    md = (out / "b.md").read_text()
    assert md.startswith("| variant | status |") and "broken.tflite | failed" in md
    assert (out / "b.csv").read_text().splitlines()[0].startswith("variant,status,error,threads")
    assert (out / "b.png").stat().st_size > 5000


def test_gates(bench_report):
    rep = json.loads((bench_report[1] / "b.json").read_text())
    rep["rows"] = [r for r in rep["rows"] if r["variant"] != "broken.tflite"]
    assert check_gates(rep, max_drop=1.0, min_agreement=0.0, max_p50_ms=1e6, max_size_kb=1e6) == []
    int8 = next(r for r in rep["rows"] if r["variant"] == "int8.tflite" and r["threads"] == 1)
    fails = check_gates(rep, min_agreement=1.01)
    assert any(f.startswith("int8.tflite (threads=1): agreement") and "below --min-agreement 1.01" in f for f in fails)
    fails = check_gates(rep, max_size_kb=1)
    assert f"int8.tflite (threads=1): size {int8['size_bytes'] / 1024:.1f} KB exceeds --max-size-kb 1" in fails
    assert all("keras" not in f for f in fails)
    fails = check_gates(rep, max_p50_ms=1e-9)
    assert any("p50" in f and "exceeds --max-p50-ms 1e-09" in f for f in fails)
    ref_acc = next(r["accuracy"] for r in rep["rows"] if r["variant"] == "keras" and r["threads"] == 1)
    worse = dict(int8, accuracy=ref_acc - 0.02)
    rep2 = dict(rep, rows=[r for r in rep["rows"] if r is not int8] + [worse])
    assert any("accuracy drop 0.0200 vs keras exceeds --max-drop 0.005" in f for f in check_gates(rep2, max_drop=0.005))


def test_gate_exit_code_via_cli(bench_dir, data_root, tmp_path):
    d = tmp_path / "ok"
    d.mkdir()
    for f in ("int8.tflite", "int8.json", "float32.tflite", "float32.json"):
        shutil.copy(bench_dir / f, d / f)
    r = run("bench", "--models", d, "--limit", 30, "--runs", 5, "--warmup", 1, "--data", data_root)
    assert r.exit_code == 0, r.output
    r = run("bench", "--models", d, "--limit", 30, "--runs", 5, "--warmup", 1, "--data", data_root, "--max-size-kb", 1)
    assert r.exit_code == 1 and "gate failed" in r.output and "exceeds --max-size-kb 1" in r.output


def test_compare_flags_regressions(bench_report):
    rep = json.loads((bench_report[1] / "b.json").read_text())
    base = json.loads(json.dumps(rep))
    for r in base["rows"]:
        if r["variant"] == "int8.tflite" and r["threads"] == 1:
            r["accuracy"] += 0.01
            r["latency_ms"]["p50"] /= 2
    deltas = {(d["variant"], d["threads"]): d for d in compare(rep, base)}
    d = deltas[("int8.tflite", 1)]
    assert d["regression"] and abs(d["d_accuracy"] + 0.01) < 1e-9 and abs(d["d_p50_rel"] - 1.0) < 1e-9
    assert any("accuracy down" in f for f in d["flags"]) and any("p50 up" in f for f in d["flags"])
    assert not deltas[("float32.tflite", 1)]["regression"]
    assert deltas[("broken.tflite", 1)]["note"] == "no comparable baseline row"


def test_data_info_and_check(data_root, tmp_path):
    r = run("data", "info", "--data", data_root)
    assert r.exit_code == 0 and "bloodmnist" in r.output and "yes" in r.output
    r = run("data", "info", "--data", tmp_path / "nope")
    assert r.exit_code == 2 and "no such directory" in r.output


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "edge_wbc", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "classify" in r.stdout and "bench" in r.stdout


def test_roofline_fills_roof_pct(bench_dir, data_root, tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    for f in ("int8.tflite", "int8.json"):
        shutil.copy(bench_dir / f, d / f)
    r = run("bench", "--models", d, "--limit", 20, "--runs", 5, "--warmup", 1, "--data", data_root, "--roofline", "--json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    roof = rep["roofline"]
    assert roof["int8"]["1"] > 0 and roof["float32"]["1"] > 0 and roof["macs"] == 8 * 28 * 28 * 64 * 64 * 9
    row = rep["rows"][0]
    assert row["roof_pct"] == pytest.approx(100 * row["gmac_per_s"] / roof["int8"]["1"])
