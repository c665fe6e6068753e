"""Bench gates and --compare: each gate alone at its boundary, through the library and through the CLI.

The CLI tests replace the measurement (``run_bench``) with a report of known numbers, so the exit code
and the --json ``gate_failures`` are checked for exact values in well under a second each.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import edge_wbc.bench.runner as runner_mod
from edge_wbc.bench.report import P50_NOISE, ROW_KEYS, check_gates, compare
from edge_wbc.bench.runner import BenchConfig, run_bench
from edge_wbc.cli import app
from edge_wbc.data.containers import Dataset, Split
from edge_wbc.spec import ModelSpec

cli = CliRunner()


def _row(variant, threads=1, status="ok", accuracy=0.9, p50=1.0, size=1024, agreement=None, error=None):
    r = {k: None for k in ROW_KEYS}
    r.update(variant=variant, threads=threads, status=status, accuracy=accuracy, size_bytes=size, error=error,
             gzip_bytes=size // 2, agreement=agreement,
             latency_ms={"p50": p50, "p90": p50, "p99": p50, "mean": p50, "std": 0.0, "min": p50, "n": 3})
    return r


def _report(rows, reference="keras"):
    return {"dataset": "bloodmnist", "split": "test", "n": 10, "reference": reference, "rows": rows,
            "config": {"threads": [1], "runs": 3, "warmup": 1}, "roofline": None,
            "device": {"cpu": "cpu", "cores": 2, "interpreter": "ai_edge_litert", "interpreter_version": "0"}}


NO_REF = ("int8.tflite (threads=1): --max-drop needs a float reference (keras, float32.tflite or float16.tflite), "
          "none ran")


def _rep():
    return _report([
        _row("keras", accuracy=0.90, p50=50.0, size=900 * 1024, agreement=1.0),
        _row("int8.tflite", accuracy=0.85, p50=2.0, size=100 * 1024, agreement=0.94),
    ])


# ---- check_gates -------------------------------------------------------------------------------
def test_no_gate_no_failure():
    assert check_gates(_rep()) == []


def test_max_drop_at_and_past_its_limit():
    assert check_gates(_rep(), max_drop=0.06) == []
    assert check_gates(_rep(), max_drop=0.04) == [
        "int8.tflite (threads=1): accuracy drop 0.0500 vs keras exceeds --max-drop 0.04"]
    # a variant better than the reference never fails
    rep = _report([_row("keras", accuracy=0.80), _row("int8.tflite", accuracy=0.85)])
    assert check_gates(rep, max_drop=0.0) == []


def test_max_drop_without_a_reference_fails_loudly():
    rep = _report([_row("int8.tflite", accuracy=0.85)], reference=None)
    assert check_gates(rep, max_drop=0.5) == [
        NO_REF]
    # the reference named but failed: no reference either
    rep = _report([_row("keras", status="failed", error="boom"), _row("int8.tflite")])
    fails = check_gates(rep, max_drop=0.5)
    assert fails == ["keras (threads=1): status failed: boom",
                     NO_REF]


def test_min_agreement_at_and_below():
    assert check_gates(_rep(), min_agreement=0.94) == []
    assert check_gates(_rep(), min_agreement=0.95) == [
        "int8.tflite (threads=1): agreement 0.9400 is below --min-agreement 0.95"]


def test_max_p50_ms_applies_to_tflite_rows_only():
    # the keras row takes 50 ms: never gated
    assert check_gates(_rep(), max_p50_ms=2.0) == []
    assert check_gates(_rep(), max_p50_ms=1.5) == ["int8.tflite (threads=1): p50 2.000 ms exceeds --max-p50-ms 1.5"]


def test_max_size_kb_applies_to_tflite_rows_only():
    assert check_gates(_rep(), max_size_kb=100) == []
    assert check_gates(_rep(), max_size_kb=99.5) == [
        "int8.tflite (threads=1): size 100.0 KB exceeds --max-size-kb 99.5"]


def test_max_drop_exactly_at_the_limit_passes():
    rep = _report([_row("keras", accuracy=0.75), _row("int8.tflite", accuracy=0.5)])  # drop 0.25, exact in binary
    assert check_gates(rep, max_drop=0.25) == []
    assert check_gates(rep, max_drop=0.2499) == [
        "int8.tflite (threads=1): accuracy drop 0.2500 vs keras exceeds --max-drop 0.2499"]


def test_max_size_kb_is_kibibytes():
    # 100 KiB + 1 byte is over a 100 KB gate (KB = 1024 bytes, as the size column); exactly 100 KiB is not
    rep = _report([_row("keras"), _row("int8.tflite", size=100 * 1024 + 1)])
    assert check_gates(rep, max_size_kb=100) == ["int8.tflite (threads=1): size 100.0 KB exceeds --max-size-kb 100"]
    rep = _report([_row("keras"), _row("int8.tflite", size=100 * 1024)])
    assert check_gates(rep, max_size_kb=100) == []


def test_a_failed_variant_fails_the_gates():
    rep = _report([_row("keras"), _row("bad.tflite", status="failed", error="corrupt")])
    assert check_gates(rep) == ["bad.tflite (threads=1): status failed: corrupt"]


# ---- compare -----------------------------------------------------------------------------------
def _cmp(p50, base_p50=1.0, acc=0.9, base_acc=0.9, noise=0.125):
    rep = _report([_row("int8.tflite", accuracy=acc, p50=p50, size=2048)])
    base = _report([_row("int8.tflite", accuracy=base_acc, p50=base_p50, size=1024)])
    return compare(rep, base, noise=noise)[0]


def test_compare_at_exactly_the_margin_and_just_past_it():
    at = _cmp(1.125)  # +12.5 % with a 12.5 % margin: noise
    assert at["regression"] is False and at["flags"] == [] and at["d_p50_rel"] == 0.125
    past = _cmp(1.1251)
    assert past["regression"] is True and past["flags"] == ["p50 up +12.5% (noise margin 12%)"]
    assert _cmp(1.25)["regression"] and not _cmp(0.5)["regression"]
    assert at["d_p50_ms"] == 0.125 and at["d_size_bytes"] == 1024 and at["d_accuracy"] == 0.0


def test_compare_accuracy_down_and_missing_rows():
    c = _cmp(1.0, acc=0.89, base_acc=0.9)
    assert c["regression"] and c["flags"] == ["accuracy down -0.0100"]
    assert not _cmp(1.0, acc=0.91, base_acc=0.9)["regression"]
    rep = _report([_row("int8.tflite"), _row("new.tflite")])
    base = _report([_row("int8.tflite", threads=2)])
    assert [c.get("note") for c in compare(rep, base)] == ["no comparable baseline row"] * 2


def test_compare_without_comparable_rows_names_them():
    rep = _report([_row("int8.tflite"), _row("float32.tflite", threads=2)])
    want = [{"variant": "int8.tflite", "threads": 1, "note": "no comparable baseline row"},
            {"variant": "float32.tflite", "threads": 2, "note": "no comparable baseline row"}]
    assert compare(rep, {}) == want  # a baseline JSON without rows (not a bench report): nothing to compare
    assert compare(rep, {"rows": []}) == want
    # the baseline row failed (its accuracy and latency are null): not comparable either
    base = _report([_row("int8.tflite", status="failed", accuracy=None, error="boom")])
    assert compare(_report([_row("int8.tflite")]), base) == want[:1]
    # this run's row failed
    assert compare(_report([_row("int8.tflite", status="failed", error="x")]), _report([_row("int8.tflite")])) == \
        want[:1]


def test_compare_with_a_zero_baseline_p50_is_no_regression():
    c = _cmp(1.0, base_p50=0.0)
    assert c["d_p50_rel"] == 0.0 and c["regression"] is False and c["flags"] == [] and c["d_p50_ms"] == 1.0


def test_default_noise_margin_is_ten_percent():
    assert P50_NOISE == 0.10
    assert _cmp(1.09, noise=P50_NOISE)["regression"] is False
    assert _cmp(1.11, noise=P50_NOISE)["regression"] is True


# ---- through the CLI ---------------------------------------------------------------------------
@pytest.fixture
def fake_bench(monkeypatch, tmp_path):
    """`edge-wbc bench` on two placeholder files, measuring nothing: run_bench returns _rep()."""
    seen = {}

    def fake(models, cfg, progress=None):
        seen["cfg"] = cfg
        return seen.get("report") or _rep()

    monkeypatch.setattr(runner_mod, "run_bench", fake)
    models = [tmp_path / "model.keras", tmp_path / "int8.tflite"]
    for m in models:
        m.write_bytes(b"x")

    def invoke(*args):
        out = tmp_path / "b.json"
        r = cli.invoke(app, ["bench", "--models", str(models[0]), "--models", str(models[1]), "--json", str(out),
                             *map(str, args)])
        return r, (json.loads(out.read_text()) if out.is_file() else None)

    invoke.seen = seen
    return invoke


def test_cli_no_gates_exit_0(fake_bench):
    r, rep = fake_bench()
    assert r.exit_code == 0, r.output
    assert rep["gate_failures"] == [] and "compare" not in rep


@pytest.mark.parametrize(
    "flag, ok, bad, message",
    [
        ("--max-drop", 0.06, 0.04, "accuracy drop 0.0500 vs keras exceeds --max-drop 0.04"),
        ("--min-agreement", 0.94, 0.95, "agreement 0.9400 is below --min-agreement 0.95"),
        ("--max-p50-ms", 2.0, 1.5, "p50 2.000 ms exceeds --max-p50-ms 1.5"),
        ("--max-size-kb", 100, 99.5, "size 100.0 KB exceeds --max-size-kb 99.5"),
    ],
)
def test_cli_each_gate_alone(fake_bench, flag, ok, bad, message):
    r, rep = fake_bench(flag, ok)
    assert r.exit_code == 0, r.output
    assert rep["gate_failures"] == []
    r, rep = fake_bench(flag, bad)
    assert r.exit_code == 1
    assert rep["gate_failures"] == [f"int8.tflite (threads=1): {message}"]
    assert message in " ".join(r.output.split())


def test_cli_max_drop_and_min_agreement_reach_their_own_gates(fake_bench):
    # 0.5 is a loose drop and a strict agreement: only the agreement gate may fail
    r, rep = fake_bench("--max-drop", 0.5, "--min-agreement", 0.5)
    assert r.exit_code == 0 and rep["gate_failures"] == []
    r, rep = fake_bench("--max-drop", 0.5, "--min-agreement", 0.99)
    assert r.exit_code == 1 and rep["gate_failures"] == [
        "int8.tflite (threads=1): agreement 0.9400 is below --min-agreement 0.99"]
    r, rep = fake_bench("--max-drop", 0.01, "--min-agreement", 0.5)
    assert r.exit_code == 1 and rep["gate_failures"] == [
        "int8.tflite (threads=1): accuracy drop 0.0500 vs keras exceeds --max-drop 0.01"]


def test_cli_max_drop_without_reference_exits_1(fake_bench):
    fake_bench.seen["report"] = _report([_row("int8.tflite", accuracy=0.85)], reference=None)
    r, rep = fake_bench("--max-drop", 0.5)
    assert r.exit_code == 1
    assert rep["gate_failures"] == [
        NO_REF]


def test_cli_split_and_config_reach_the_bench(fake_bench):
    r, _ = fake_bench("--split", "val", "--limit", 7, "--runs", 5, "--warmup", 0, "--threads", "1,2")
    assert r.exit_code == 0, r.output
    cfg = fake_bench.seen["cfg"]
    assert (cfg.split, cfg.limit, cfg.runs, cfg.warmup, cfg.threads) == ("val", 7, 5, 0, (1, 2))
    fake_bench()
    assert fake_bench.seen["cfg"].split == "test"


def test_cli_compare_default_margin_and_exact_margin(fake_bench, tmp_path):
    base = _rep()
    base["rows"][1]["latency_ms"]["p50"] = 1.6  # 2.0 now: +25 %
    bf = tmp_path / "base.json"
    bf.write_text(json.dumps(base))
    r, rep = fake_bench("--compare", bf)
    c = {x["variant"]: x for x in rep["compare"]}
    assert c["int8.tflite"]["regression"] and c["int8.tflite"]["flags"] == ["p50 up +25.0% (noise margin 10%)"]
    assert r.exit_code == 0  # --compare reports; only gates fail the run
    r, rep = fake_bench("--compare", bf, "--noise-margin", 0.25)  # exactly at the margin: noise
    assert {x["variant"]: x for x in rep["compare"]}["int8.tflite"]["regression"] is False
    r, rep = fake_bench("--compare", bf, "--noise-margin", 0.2499)
    assert {x["variant"]: x for x in rep["compare"]}["int8.tflite"]["regression"] is True


# ---- run_bench: the split benchmarked is the split requested --------------------------------------
def test_run_bench_measures_the_requested_split(monkeypatch, tmp_path):
    spec = ModelSpec("classification", 8, 8, ("x", "y"), dataset="toy")
    for name in ("model.keras", "int8.tflite"):
        (tmp_path / name).write_bytes(b"m")
    spec.save(tmp_path / "model.json")
    spec.save(tmp_path / "int8.json")

    def split(n, first):  # images whose first pixel says the class: 'probs' [1 - v, v]
        y = (np.arange(n) % 2).astype(np.int64)
        x = np.zeros((n, 8, 8, 3), np.uint8)
        x[:, 0, 0, 0] = y
        return Split(x, y, [f"{first}{i}" for i in range(n)])

    ds = Dataset("toy", ("x", "y"), {"train": split(4, "tr"), "val": split(6, "va"), "test": split(10, "te")})
    monkeypatch.setattr(runner_mod, "load_dataset", lambda *a, **k: ds)

    def worker(job, timeout):
        x = np.load(job["images"])
        y = x[:, 0, 0, 0].astype(float)
        if job["path"].endswith("int8.tflite"):
            y[0] = 1 - y[0]  # one disagreement, on the first image
        pf = job["out"] + ".npy"
        np.save(pf, np.column_stack([1 - y, y]))
        return {"status": "ok", "probs_file": pf, "input_dtype": "uint8",
                "latency_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0, "std": 0.0}}

    monkeypatch.setattr(runner_mod, "_run_worker", worker)
    monkeypatch.setattr(runner_mod, "_gzip_size", lambda p: 1)
    rep = run_bench([tmp_path / "model.keras", tmp_path / "int8.tflite"], BenchConfig(split="val", runs=1, warmup=0))
    assert (rep["split"], rep["n"], rep["reference"]) == ("val", 6, "keras")
    rows = {r["variant"]: r for r in rep["rows"]}
    assert rows["keras"]["accuracy"] == 1.0 and rows["keras"]["agreement"] == 1.0
    assert rows["int8.tflite"]["accuracy"] == pytest.approx(5 / 6)
    assert rows["int8.tflite"]["agreement"] == pytest.approx(5 / 6)
    assert rows["int8.tflite"]["disagreements"] == ["va0"]
    assert rows["int8.tflite"]["max_prob_gap"] == 1.0
    rep = run_bench([tmp_path / "model.keras", tmp_path / "int8.tflite"], BenchConfig(split="test", runs=1, warmup=0))
    assert (rep["split"], rep["n"]) == ("test", 10)
    assert {r["variant"]: r["disagreements"] for r in rep["rows"]} == {"keras": [], "int8.tflite": ["te0"]}
    rep = run_bench([tmp_path / "int8.tflite"], BenchConfig(split="test", limit=4, runs=1, warmup=0))
    assert (rep["split"], rep["n"], rep["reference"]) == ("test", 4, None)
    assert rep["rows"][0]["agreement"] is None and rep["rows"][0]["accuracy"] == 0.75


# ---- run_bench: rows, jobs, errors (a fake worker records what it was asked) ----------------------
@pytest.fixture
def toy_bench(monkeypatch, tmp_path):
    spec = ModelSpec("classification", 8, 8, ("x", "y"), dataset="toy", split_seed=7)

    def split(n, first):
        y = (np.arange(n) % 2).astype(np.int64)
        x = np.zeros((n, 8, 8, 3), np.uint8)
        x[:, 0, 0, 0] = y
        return Split(x, y, [f"{first}{i}" for i in range(n)])

    ds = Dataset("toy", ("x", "y"), {"train": split(4, "tr"), "val": split(6, "va"), "test": split(10, "te")})
    calls = {"load": [], "jobs": []}

    def load_dataset(*a, **k):
        calls["load"].append((a, k))
        return ds

    def worker(job, timeout):
        calls["jobs"].append((dict(job), timeout))
        x = np.load(job["images"])
        y = x[:, 0, 0, 0].astype(float)
        pf = job["out"] + ".npy"
        np.save(pf, np.column_stack([1 - y, y]))
        return {"status": "ok", "probs_file": pf, "input_dtype": "uint8", "macs": 2_000_000, "interpreter": "fake",
                "batch_note": "note", "not_a_row_key": 1,
                "latency_ms": {"p50": 2.0, "p90": 2.0, "p99": 2.0, "mean": 2.0, "std": 0.0}}

    monkeypatch.setattr(runner_mod, "load_dataset", load_dataset)
    monkeypatch.setattr(runner_mod, "_run_worker", worker)

    def make(name, **kw):
        (tmp_path / name).write_bytes(b"model-" + name.encode())
        spec.replace(**kw).save((tmp_path / name).with_suffix(".json"))
        return tmp_path / name

    return make, calls, spec


def test_run_bench_rows_jobs_and_skipped_variants(toy_bench, tmp_path):
    make, calls, spec = toy_bench
    ok = make("int8.tflite")
    other_labels = make("labels.tflite", labels=("p", "q"))
    nospec = tmp_path / "nospec.tflite"
    nospec.write_bytes(b"x")
    seen = []
    cfg = BenchConfig(threads=(1, 2), runs=9, warmup=3, batch=4, split="val", data="DATA", timeout_s=77.0)
    rep = run_bench([ok, other_labels, nospec], cfg, progress=seen.append)
    assert calls["load"][0] == (("toy", spec), {"data": "DATA", "seed": 7, "only": "val", "subsample": None})
    assert sorted(seen) == sorted([f"{v}.tflite @ {t}" for v in ("int8", "labels", "nospec")
                                   for t in ("1 thread", "2 threads")])
    ok_jobs = sorted((j["path"], j["threads"]) for j, _ in calls["jobs"] if j["path"] == str(ok))
    assert ok_jobs == [(str(ok), 1), (str(ok), 2)]
    job, timeout = next(x for x in calls["jobs"] if x[0]["path"] == str(ok))
    assert timeout == 77.0
    assert {k: job[k] for k in ("runs", "warmup", "batch", "eval")} == {"runs": 9, "warmup": 3, "batch": 4,
                                                                         "eval": True}
    assert job["images"].endswith(".npy")
    by = {(r["variant"], r["threads"]): r for r in rep["rows"]}
    assert {k: r["status"] for k, r in by.items()} == {
        ("int8.tflite", 1): "ok", ("int8.tflite", 2): "ok", ("labels.tflite", 1): "failed",
        ("labels.tflite", 2): "failed", ("nospec.tflite", 1): "failed", ("nospec.tflite", 2): "failed"}
    assert by[("labels.tflite", 1)]["error"] == "labels ['p', 'q'] do not match the dataset's ['x', 'y']"
    missing = "model.json not found (every model needs its model.json beside it)"
    assert by[("nospec.tflite", 1)]["error"] == f"{tmp_path / 'model.json'}: {missing}"
    rows = [by[("int8.tflite", 1)], None, by[("labels.tflite", 1)]]
    r0 = rows[0]
    assert r0["path"] == str(ok) and r0["size_bytes"] == len(b"model-int8.tflite")
    assert r0["gzip_bytes"] == runner_mod._gzip_size(ok) and r0["gzip_bytes"] > 0
    assert r0["input_dtype"] == "uint8" and r0["macs"] == 2_000_000 and r0["batch_note"] == "note"
    assert r0["gmac_per_s"] == pytest.approx(2e6 / 2e-3 / 1e9)  # 1.0 GMAC/s
    assert "not_a_row_key" not in r0 and r0["interpreter"] == "fake"
    assert rows[2]["path"] == str(other_labels) and rows[2]["size_bytes"] == len(b"model-labels.tflite")
    assert {k: rep["config"][k] for k in ("threads", "runs", "warmup", "batch", "limit")} == {
        "threads": [1, 2], "runs": 9, "warmup": 3, "batch": 4, "limit": None}
    assert (rep["dataset"], rep["split"], rep["n"], rep["roofline"]) == ("toy", "val", 6, None)
    assert set(rep["device"]) >= {"cpu", "cores", "interpreter"}


def test_run_bench_dataset_override_and_errors(toy_bench, tmp_path, monkeypatch):
    from edge_wbc.errors import DataError, ModelError

    make, calls, spec = toy_bench
    m = make("int8.tflite")
    run_bench([m], BenchConfig(dataset="other", runs=1, warmup=0))
    # another dataset: seed 0
    assert calls["load"][-1] == (("other", spec), {"data": None, "seed": 0, "only": "test", "subsample": None})
    sub = tmp_path / "sub"
    sub.mkdir()
    for n in ("a.tflite", "b.tflite"):
        (sub / n).write_bytes(b"x")
    miss = f"{sub / 'model.json'}: model.json not found (every model needs its model.json beside it)"
    with pytest.raises(ModelError) as e:
        run_bench([sub / "a.tflite", sub / "b.tflite"], BenchConfig())
    assert str(e.value) == f"no variant has a readable model.json: {miss}; {miss}"
    nods = make("nods.tflite", dataset="")
    with pytest.raises(DataError, match="^the model.json names no dataset: pass --dataset$"):
        run_bench([nods], BenchConfig())
    empty = Dataset("toy", ("x", "y"), {"test": Split(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64), [])})
    monkeypatch.setattr(runner_mod, "load_dataset", lambda *a, **k: empty)
    with pytest.raises(DataError, match="^toy test split is empty$"):
        run_bench([m], BenchConfig())
    one = Dataset("toy", ("x", "y"), {"test": Split(np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1, np.int64), ["a"])})
    monkeypatch.setattr(runner_mod, "load_dataset", lambda *a, **k: one)
    assert run_bench([m], BenchConfig(runs=1, warmup=0))["n"] == 1


# ---- _score: metrics, the model's rule, agreement with the reference and with edge-wbc's own row -------
def _srow(variant, path, probs=None, threads=1, client="edge-wbc", resize=None, rule=None, status="ok"):
    r = {k: None for k in ROW_KEYS}
    r.update(variant=variant, path=path, threads=threads, client=client, resize=resize, status=status)
    if probs is not None:
        r["_probs"] = np.tile(np.array(probs, float), (6, 1))  # the 4-image pattern, 24 images
    if rule is not None:
        r["_rule"] = rule
    return r


def test_score_fills_metrics_rule_effect_agreement_and_client_agreement():
    from edge_wbc.metrics.classification import ece
    from edge_wbc.runtime.rule import UncertainRule

    y = np.tile([0, 1, 0, 1], 6)
    ids = [f"i{j}" for j in range(24)]
    K = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]  # keras: all right
    Q = [[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.4, 0.6]]  # int8: image 1 of each 4 wrong
    rows = [
        _srow("keras", "m.keras", K),
        _srow("bad.tflite", "bad.tflite", status=None, rule=UncertainRule()),  # the worker gave no probabilities
        _srow("int8.tflite", "int8.tflite", Q, rule=UncertainRule(1.0, 0.65)),
        _srow("int8.tflite", "int8.tflite", [[0.3, 0.7]] * 4, threads=2),  # predicts 1 everywhere
        _srow("int8.tflite (mediapipe)", "int8.tflite", [[0.1, 0.9], [0.6, 0.4], [0.7, 0.3], [0.4, 0.6]],
              client="mediapipe"),
        _srow("int8.tflite (resize=bilinear)", "int8.tflite", [[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.6, 0.4]],
              resize="bilinear"),
        _srow("flip.tflite", "flip.tflite", [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]],
              rule=UncertainRule(1.0, 0.99)),  # all wrong, nothing confident enough
        {**_srow("failed.tflite", "failed.tflite", status="failed"), "error": "boom"},
    ]
    runner_mod._score(rows, y, ids, ("x", "y"))
    assert all(not {"_p", "_probs", "_rule"} & set(r) for r in rows)
    keras, bad, int8, int8_2, mp, rs, flip, failed = rows
    keys = ("status", "accuracy", "agreement", "max_prob_gap", "disagreements", "client_agreement", "temperature",
            "uncertain_below", "uncertain_share", "accuracy_reported")
    got = {r["variant"] + f"@{r['threads']}": {k: r[k] for k in keys} for r in rows}
    assert got["keras@1"] == {"status": "ok", "accuracy": 1.0, "agreement": 1.0, "max_prob_gap": 0.0,
                              "disagreements": [], "client_agreement": None, "temperature": None,
                              "uncertain_below": None, "uncertain_share": None, "accuracy_reported": None}
    assert got["bad.tflite@1"] == {k: None for k in keys} | {"status": "failed"}
    assert got["failed.tflite@1"] == {k: None for k in keys} | {"status": "failed"} and failed["error"] == "boom"
    # int8: the rule keeps 0.9 and 0.7 (both right, class 0), calls 0.6 uncertain
    assert got["int8.tflite@1"] == {"status": "ok", "accuracy": 0.75, "agreement": 0.75,
                                    "max_prob_gap": pytest.approx(0.4),
                                    "disagreements": [f"i{j}" for j in range(1, 24, 4)], "client_agreement": None,
                                    "temperature": 1.0, "uncertain_below": 0.65, "uncertain_share": 0.5,
                                    "accuracy_reported": 1.0}
    assert int8["mean_prob_gap"] == pytest.approx(0.1)  # |0.6 - 0.2| on both columns of 1 image in 4
    assert int8["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)  # F1 x: 2 * (2/3) / (5/3); y: 2 * 0.5 / 1.5
    assert int8["per_class_recall"] == {"x": 1.0, "y": 0.5}
    assert int8["auc_ovr"] == 1.0 and int8["ece"] == pytest.approx(ece(y, np.tile(np.array(Q), (6, 1))))
    assert keras["macro_f1"] == 1.0 and keras["per_class_recall"] == {"x": 1.0, "y": 1.0}
    assert got["int8.tflite@2"]["accuracy"] == 0.5 and got["int8.tflite@2"]["client_agreement"] is None
    # the client and resize rows: agreement with edge-wbc's own row of the same file and threads (int8 @ 1)
    assert (mp["client_agreement"], rs["client_agreement"]) == (0.75, 0.75)
    assert (mp["agreement"], rs["agreement"]) == (0.5, 0.5)  # with the reference (keras)
    # flip: every image disagrees (the list stops at 20); nothing reaches 0.99: all uncertain, no accuracy
    assert got["flip.tflite@1"] == {"status": "ok", "accuracy": 0.0, "agreement": 0.0,
                                    "max_prob_gap": pytest.approx(0.8), "disagreements": ids[:20],
                                    "client_agreement": None, "temperature": 1.0, "uncertain_below": 0.99,
                                    "uncertain_share": 1.0, "accuracy_reported": None}


def test_score_reference_is_a_row_with_probabilities():
    # a keras row that ran but returned no probabilities is not the reference: float32.tflite is
    y = np.tile([0, 1, 0, 1], 6)
    rows = [_srow("keras", "m.keras", status="ok"),
            _srow("model_float32.tflite", "f.tflite", [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]),
            _srow("int8.tflite", "int8.tflite", [[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.4, 0.6]])]
    runner_mod._score(rows, y, [str(i) for i in range(24)], ("x", "y"))
    assert [r["agreement"] for r in rows] == [None, 1.0, 0.75]


def test_score_client_rows_without_edge_wbcs_own_row():
    # edge-wbc's own row of the file failed: the client and resize rows have nothing to agree with
    # (never another client or resize row, never an exception)
    y = np.tile([0, 1, 0, 1], 6)
    P = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]
    rows = [_srow("int8.tflite", "int8.tflite", status=None),
            _srow("int8.tflite (resize=bilinear)", "int8.tflite", P, resize="bilinear"),
            _srow("int8.tflite (mediapipe)", "int8.tflite", P, client="mediapipe")]
    runner_mod._score(rows, y, [str(i) for i in range(24)], ("x", "y"))
    assert [r["status"] for r in rows] == ["failed", "ok", "ok"]
    assert [r["client_agreement"] for r in rows] == [None, None, None]
