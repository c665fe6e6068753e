"""edge-wbc bench: accuracy, agreement with the float reference, latency, memory and size per variant.

Each variant x thread count runs in its own subprocess (:mod:`edge_wbc.benchworker`) on the same
real, preprocessed images, so peak RSS is that of a fresh process that loads and runs the variant.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .data import load_dataset
from .errors import DataError, EdgeWBCError, ModelError, SpecError
from .metrics import classification_report
from .spec import ModelSpec, spec_path_for

ROW_KEYS = [
    "variant", "status", "error", "threads", "device", "input_dtype", "accuracy", "macro_f1", "auc_ovr", "ece",
    "per_class_recall", "agreement", "max_prob_gap", "mean_prob_gap", "disagreements", "size_bytes", "gzip_bytes",
    "params", "macs", "gmac_per_s", "roof_pct", "init_ms", "first_ms", "latency_ms", "throughput_ips",
    "batch_throughput_ips", "peak_rss_mb", "path",
]


class GateFailure(EdgeWBCError):
    pass


@dataclass
class BenchConfig:
    threads: tuple[int, ...] = (1,)
    runs: int = 200
    warmup: int = 20
    batch: int | None = None
    limit: int | None = None
    split: str = "test"
    dataset: str | None = None
    data: str | None = None
    timeout_s: float = 1800.0
    roofline: bool = False
    extra: dict = field(default_factory=dict)


def discover(paths: list[Path]) -> list[Path]:
    """Files as given; a directory gives its ``*.keras`` (reference) then its ``*.tflite``, sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.glob("*.keras")) + sorted(q for q in p.glob("*.tflite") if not q.name.startswith("."))
            if not found:
                raise ModelError(f"{p}: no .keras or .tflite models in this directory")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise ModelError(f"{p}: no such model file or directory")
    seen, uniq = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            uniq.append(p)
    return uniq


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .runtime import interpreter_backend

    try:
        _, backend, version = interpreter_backend()
    except ModelError:
        backend, version = "none", ""
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "system": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "interpreter": backend, "interpreter_version": version}


def _gzip_size(path: Path) -> int:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(path.read_bytes())
    return len(buf.getvalue())


def _run_worker(job: dict, timeout: float) -> dict:
    jf = Path(job["out"]).with_suffix(".job.json")
    jf.write_text(json.dumps(job))
    try:
        proc = subprocess.run([sys.executable, "-m", "edge_wbc.benchworker", str(jf)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {timeout:.0f}s"}
    out = Path(job["out"])
    if out.is_file():
        return json.loads(out.read_text())
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    return {"status": "failed", "error": f"worker crashed (exit {proc.returncode}): {tail[0]}"}


def _load_spec(path: Path) -> ModelSpec:
    try:
        return ModelSpec.load(spec_path_for(path))
    except SpecError as e:
        raise ModelError(str(e)) from None


def run_bench(models: list[Path], cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict:
    variants = discover(models)
    specs: dict[Path, ModelSpec | Exception] = {}
    for v in variants:
        try:
            specs[v] = _load_spec(v)
        except ModelError as e:
            specs[v] = e
    good = [s for s in specs.values() if isinstance(s, ModelSpec)]
    if not good:
        raise ModelError("no variant has a readable model.json: " + "; ".join(str(s) for s in specs.values()))
    base = good[0]
    dataset_name = cfg.dataset or base.dataset
    if not dataset_name:
        raise DataError("the model.json names no dataset: pass --dataset")
    ds = load_dataset(dataset_name, base, data=cfg.data, seed=base.split_seed if dataset_name == base.dataset else 0)
    split = ds.split(cfg.split).head(cfg.limit)
    if len(split) == 0:
        raise DataError(f"{dataset_name} {cfg.split} split is empty")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edge-wbc-bench-") as tmp:
        tmp = Path(tmp)
        img_file = tmp / "images.npy"
        np.save(img_file, split.images)
        for vi, v in enumerate(variants):
            sp = specs[v]
            for ti, threads in enumerate(cfg.threads):
                row = {k: None for k in ROW_KEYS}
                row.update(variant="keras" if v.suffix == ".keras" else v.name, path=str(v), threads=threads,
                           size_bytes=v.stat().st_size, gzip_bytes=_gzip_size(v))
                if progress:
                    progress(f"{row['variant']} @ {threads} thread{'s' if threads > 1 else ''}")
                if isinstance(sp, Exception):
                    row.update(status="failed", error=str(sp))
                    rows.append(row)
                    continue
                if tuple(sp.labels) != tuple(ds.labels):
                    row.update(status="failed", error=f"labels {list(sp.labels)} do not match the dataset's {list(ds.labels)}")
                    rows.append(row)
                    continue
                if sp.input_shape != base.input_shape:
                    row.update(status="failed", error=f"input {sp.input_shape} differs from the bench's {base.input_shape}")
                    rows.append(row)
                    continue
                job = {"path": str(v), "images": str(img_file), "threads": threads, "runs": cfg.runs,
                       "warmup": cfg.warmup, "batch": cfg.batch, "eval": True, "out": str(tmp / f"v{vi}_t{threads}.json")}
                res = _run_worker(job, cfg.timeout_s)
                probs_file = res.pop("probs_file", None)
                row.update({k: v_ for k, v_ in res.items() if k in ROW_KEYS or k in ("interpreter", "batch_note")})
                if res.get("status") == "ok" and probs_file:
                    row["_probs"] = np.load(probs_file)
                if row.get("macs") and row.get("latency_ms"):
                    row["gmac_per_s"] = row["macs"] / (row["latency_ms"]["p50"] / 1e3) / 1e9
                rows.append(row)
    _score(rows, split.labels, list(split.ids), ds.labels)
    roof = None
    if cfg.roofline:
        from .roofline import measure_roofline

        roof = measure_roofline(threads=cfg.threads)
        for r in rows:
            if r.get("gmac_per_s") and r.get("input_dtype"):
                key = "int8" if r["input_dtype"] in ("uint8", "int8") else "float32"
                peak = roof.get(key, {}).get(str(r["threads"]))
                r["roof_pct"] = 100.0 * r["gmac_per_s"] / peak if peak else None
    ref = next((r for r in rows if r["variant"] == "keras" and r["status"] == "ok"), None) or next(
        (r for r in rows if r["variant"].endswith("float32.tflite") and r["status"] == "ok"), None)
    return {"dataset": dataset_name, "split": cfg.split, "n": len(split), "device": machine_info(),
            "reference": ref["variant"] if ref else None, "roofline": roof,
            "config": {"threads": list(cfg.threads), "runs": cfg.runs, "warmup": cfg.warmup, "batch": cfg.batch, "limit": cfg.limit},
            "rows": [{k: r.get(k) for k in ROW_KEYS} | ({"batch_note": r["batch_note"]} if r.get("batch_note") else {}) for r in rows]}


def _score(rows: list[dict], y: np.ndarray, ids: list[str], labels: tuple[str, ...]) -> None:
    ref = next((r for r in rows if r["variant"] == "keras" and "_probs" in r), None) or next(
        (r for r in rows if r["variant"].endswith("float32.tflite") and "_probs" in r), None)
    for r in rows:
        p = r.pop("_probs", None)
        if p is None:
            if r["status"] is None:
                r["status"] = "failed"
            continue
        rep = classification_report(y, p, labels)
        r.update(accuracy=rep["accuracy"], macro_f1=rep["macro_f1"], auc_ovr=rep["auc_ovr"], ece=rep["ece"],
                 per_class_recall={k: v["recall"] for k, v in rep["per_class"].items()})
        r["_p"] = p
    if ref is not None:
        rp = ref["_p"]
        for r in rows:
            if "_p" in r:
                gap = np.abs(r["_p"] - rp)
                dis = np.flatnonzero(r["_p"].argmax(1) != rp.argmax(1))
                r.update(agreement=float(1 - len(dis) / len(rp)), max_prob_gap=float(gap.max()), mean_prob_gap=float(gap.mean()),
                         disagreements=[ids[i] for i in dis[:20]])
    for r in rows:
        r.pop("_p", None)


# ---- gates ------------------------------------------------------------------------------------
def check_gates(report: dict, max_drop=None, min_agreement=None, max_p50_ms=None, max_size_kb=None) -> list[str]:
    """Messages for every gate that fails (empty list = pass). Failed variants fail too."""
    fails = []
    rows = report["rows"]
    ref = next((r for r in rows if r["variant"] == report.get("reference") and r["status"] == "ok"), None)
    for r in rows:
        tag = f"{r['variant']} (threads={r['threads']})"
        if r["status"] != "ok":
            fails.append(f"{tag}: status {r['status']}: {r['error']}")
            continue
        if max_drop is not None and ref is not None and r is not ref:
            drop = ref["accuracy"] - r["accuracy"]
            if drop > max_drop:
                fails.append(f"{tag}: accuracy drop {drop:.4f} vs {ref['variant']} exceeds --max-drop {max_drop}")
        if max_drop is not None and ref is None:
            fails.append(f"{tag}: --max-drop needs a float reference (keras or float32.tflite), none ran")
        if min_agreement is not None and r.get("agreement") is not None and r["agreement"] < min_agreement:
            fails.append(f"{tag}: agreement {r['agreement']:.4f} is below --min-agreement {min_agreement}")
        if max_p50_ms is not None and r["variant"] != "keras" and r["latency_ms"]["p50"] > max_p50_ms:
            fails.append(f"{tag}: p50 {r['latency_ms']['p50']:.3f} ms exceeds --max-p50-ms {max_p50_ms}")
        if max_size_kb is not None and r["variant"] != "keras" and r["size_bytes"] / 1024 > max_size_kb:
            fails.append(f"{tag}: size {r['size_bytes'] / 1024:.1f} KB exceeds --max-size-kb {max_size_kb}")
    return fails


# ---- compare ----------------------------------------------------------------------------------
#: p50 noise margin for --compare: two back-to-back runs on an idle machine differ by less than
#: this (measured and stated in the README); a larger slowdown is flagged as a regression.
P50_NOISE = 0.10


def compare(report: dict, baseline: dict, noise: float = P50_NOISE) -> list[dict]:
    base = {(r["variant"], r["threads"]): r for r in baseline.get("rows", [])}
    out = []
    for r in report["rows"]:
        b = base.get((r["variant"], r["threads"]))
        if b is None or r["status"] != "ok" or b.get("status") != "ok":
            out.append({"variant": r["variant"], "threads": r["threads"], "note": "no comparable baseline row"})
            continue
        d_acc = r["accuracy"] - b["accuracy"]
        p50, bp50 = r["latency_ms"]["p50"], b["latency_ms"]["p50"]
        rel = (p50 - bp50) / bp50 if bp50 else 0.0
        flags = []
        if d_acc < 0:
            flags.append(f"accuracy down {d_acc:+.4f}")
        if rel > noise:
            flags.append(f"p50 up {rel:+.1%} (noise margin {noise:.0%})")
        out.append({"variant": r["variant"], "threads": r["threads"], "d_accuracy": d_acc, "d_p50_ms": p50 - bp50,
                    "d_p50_rel": rel, "d_size_bytes": r["size_bytes"] - b["size_bytes"], "regression": bool(flags), "flags": flags})
    return out


# ---- output -----------------------------------------------------------------------------------
def _f(v, fmt):
    return "" if v is None else format(v, fmt)


TABLE_COLS = [
    ("variant", "variant", lambda r: r["variant"]),
    ("status", "status", lambda r: r["status"]),
    ("thr", "threads", lambda r: str(r["threads"])),
    ("acc", "accuracy", lambda r: _f(r["accuracy"], ".4f")),
    ("macro-F1", "macro_f1", lambda r: _f(r["macro_f1"], ".4f")),
    ("agree", "agreement", lambda r: _f(r["agreement"], ".4f")),
    ("ECE", "ece", lambda r: _f(r["ece"], ".4f")),
    ("size KB", "size_bytes", lambda r: _f(r["size_bytes"] / 1024, ".1f")),
    ("gzip KB", "gzip_bytes", lambda r: _f(r["gzip_bytes"] / 1024 if r["gzip_bytes"] else None, ".1f")),
    ("p50 ms", "latency_ms", lambda r: _f(r["latency_ms"]["p50"] if r["latency_ms"] else None, ".3f")),
    ("p99 ms", "latency_ms", lambda r: _f(r["latency_ms"]["p99"] if r["latency_ms"] else None, ".3f")),
    ("img/s", "throughput_ips", lambda r: _f(r["throughput_ips"], ".0f")),
    ("MMAC", "macs", lambda r: _f(r["macs"] / 1e6 if r["macs"] else None, ".1f")),
    ("GMAC/s", "gmac_per_s", lambda r: _f(r["gmac_per_s"], ".2f")),
    ("roof %", "roof_pct", lambda r: _f(r["roof_pct"], ".1f")),
    ("RSS MB", "peak_rss_mb", lambda r: _f(r["peak_rss_mb"], ".0f")),
    ("device", "device", lambda r: r["device"] or ""),
]


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in TABLE_COLS if c[0] != "roof %" or report.get("roofline")]
    return [c[0] for c in cols], [[c[2](r) for c in cols] for r in report["rows"]]


def to_markdown(report: dict) -> str:
    head, body = table_rows(report)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(x.replace("|", "/") for x in row) + " |" for row in body]
    d = report["device"]
    lines.append("")
    lines.append(f"{report['dataset']} {report['split']} split, n={report['n']}; reference: {report['reference']}; "
                 f"{d['cpu']} ({d['cores']} cores), {d['interpreter']} {d['interpreter_version']}; "
                 f"batch 1, {report['config']['runs']} runs after {report['config']['warmup']} warm-up.")
    errors = [f"- {r['variant']}: {r['error']}" for r in report["rows"] if r["status"] != "ok"]
    return "\n".join(lines + (["", "Failed variants:"] + errors if errors else [])) + "\n"


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    flat_keys = [k for k in ROW_KEYS if k not in ("latency_ms", "per_class_recall", "disagreements")]
    lat = ["p50", "p90", "p99", "mean", "std"]
    w = csv.writer(buf)
    w.writerow(flat_keys + [f"latency_{k}_ms" for k in lat])
    for r in report["rows"]:
        w.writerow([r.get(k) if r.get(k) is not None else "" for k in flat_keys] +
                   [(r["latency_ms"] or {}).get(k, "") if r["latency_ms"] else "" for k in lat])
    return buf.getvalue()


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in report["rows"] if r["status"] == "ok" and r["threads"] == min(report["config"]["threads"])]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = np.array([r["size_bytes"] for r in rows], float)
    s = 40 + 600 * sizes / sizes.max() if len(sizes) else []
    for r, si in zip(rows, s):
        ax.scatter(r["latency_ms"]["p50"], r["accuracy"], s=si, alpha=0.6)
        ax.annotate(f"{r['variant']}\n{r['size_bytes'] / 1024:.0f} KB", (r["latency_ms"]["p50"], r["accuracy"]),
                    fontsize=8, xytext=(6, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(x=0.25, y=0.3)
    ax.set_xlabel("p50 latency, batch 1 (ms, log)")
    ax.set_ylabel(f"accuracy ({report['dataset']} {report['split']}, n={report['n']})")
    ax.set_title("edge-wbc bench: accuracy vs latency (marker area ~ file size)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
