"""edge-wbc bench: the CLI end to end on a tiny model, and the report functions on their own."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from edge_wbc.bench.report import ROW_KEYS, check_gates, compare, table_rows, to_csv, to_markdown
from edge_wbc.bench.runner import discover
from edge_wbc.cli import app
from edge_wbc.data import BLOODMNIST_LABELS

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


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
    r = run(
        "bench",
        "--models",
        bench_dir,
        "--limit",
        60,
        "--runs",
        30,
        "--warmup",
        3,
        "--threads",
        "1,2",
        "--data",
        data_root,
        "--json",
        out / "b.json",
        "--markdown",
        out / "b.md",
        "--csv",
        out / "b.csv",
        "--plot",
        out / "b.png",
    )
    return r, out


def test_bench_json_schema(bench_report):
    r, out = bench_report
    assert r.exit_code == 1, r.output  # the broken variant makes the run fail ...
    rep = json.loads((out / "b.json").read_text())
    assert rep["dataset"] == "bloodmnist" and rep["split"] == "test" and rep["n"] == 60 and rep["reference"] == "keras"
    assert {"cpu", "cores", "interpreter", "interpreter_version"} <= set(rep["device"])
    rows = {(row["variant"], row["threads"]): row for row in rep["rows"]}
    assert set(rows) == {
        (v, t) for v in ("keras", "broken.tflite", "float16.tflite", "float32.tflite", "int8.tflite") for t in (1, 2)
    }
    for (v, _t), row in rows.items():
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


def test_roofline_fills_roof_pct(bench_dir, data_root, tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    for f in ("int8.tflite", "int8.json"):
        shutil.copy(bench_dir / f, d / f)
    r = run(
        "bench",
        "--models",
        d,
        "--limit",
        20,
        "--runs",
        5,
        "--warmup",
        1,
        "--data",
        data_root,
        "--roofline",
        "--json",
        tmp_path / "r.json",
    )
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    roof = rep["roofline"]
    assert roof["int8"]["1"] > 0 and roof["float32"]["1"] > 0 and roof["macs"] == 8 * 28 * 28 * 64 * 64 * 9
    row = rep["rows"][0]
    assert row["roof_pct"] == pytest.approx(100 * row["gmac_per_s"] / roof["int8"]["1"])


def _row(variant, threads=1, status="ok", accuracy=0.9, p50=1.0, size=1000, **kw):
    r = {k: None for k in ROW_KEYS}
    r.update(variant=variant, threads=threads, status=status, accuracy=accuracy, size_bytes=size, gzip_bytes=size // 2,
             latency_ms={"p50": p50, "p90": p50, "p99": p50, "mean": p50, "std": 0.0, "min": p50, "n": 3}, **kw)
    return r


def _report(rows):
    return {"dataset": "bloodmnist", "split": "test", "n": 10, "reference": "keras", "rows": rows,
            "config": {"threads": [1], "runs": 3, "warmup": 1}, "roofline": None,
            "device": {"cpu": "cpu", "cores": 2, "interpreter": "ai_edge_litert", "interpreter_version": "0"}}


def test_discover_puts_the_keras_reference_first(tmp_path):
    for name in ("b.tflite", "a.tflite", "model.keras", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in discover([tmp_path])] == ["model.keras", "a.tflite", "b.tflite"]


def test_report_renderings_keep_their_columns():
    rep = _report([_row("keras"), _row("int8.tflite", accuracy=0.85), _row("bad.tflite", status="failed", accuracy=None,
                                                                             error="ModelError: corrupt")])
    rep["rows"][2]["latency_ms"] = None
    head, body = table_rows(rep)
    assert head[:4] == ["variant", "status", "thr", "acc"] and "roof %" not in head and len(body) == 3
    csv_head = to_csv(rep).splitlines()[0].split(",")
    assert csv_head[:4] == ["variant", "status", "error", "threads"] and csv_head[-5:] == [
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms"]
    md = to_markdown(rep)
    assert md.startswith("| variant | status |") and "- bad.tflite: ModelError: corrupt" in md


def test_gates_and_compare_on_a_synthetic_report():
    rep = _report([_row("keras", accuracy=0.90), _row("int8.tflite", accuracy=0.80, p50=2.0)])
    assert check_gates(rep) == []
    assert check_gates(rep, max_drop=0.05) == [
        "int8.tflite (threads=1): accuracy drop 0.1000 vs keras exceeds --max-drop 0.05"]
    base = _report([_row("keras", accuracy=0.90), _row("int8.tflite", accuracy=0.80, p50=1.0)])
    d = {x["variant"]: x for x in compare(rep, base, noise=0.1)}
    assert d["int8.tflite"]["regression"] and not d["keras"]["regression"]
