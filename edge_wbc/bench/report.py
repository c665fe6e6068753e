"""Bench reports: gates, comparison with an earlier run, and the table / CSV / Markdown / plot renderings.

The report dict (``run_bench``'s result, the ``--json`` output) is the one input; nothing here runs a model.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..fileio import save_figure

#: The keys of every report row (the --json rows and the --csv columns).
ROW_KEYS = [
    "variant", "status", "error", "threads", "device", "input_dtype", "accuracy", "macro_f1", "auc_ovr", "ece",
    "temperature", "uncertain_below", "uncertain_share", "accuracy_reported",
    "per_class_recall", "agreement", "max_prob_gap", "mean_prob_gap", "disagreements", "size_bytes", "gzip_bytes",
    "params", "macs", "gmac_per_s", "roof_pct", "init_ms", "first_ms", "latency_ms", "throughput_ips",
    "batch_throughput_ips", "peak_rss_mb", "path", "client", "resize", "client_agreement", "interpreter",
]


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
            fails.append(f"{tag}: --max-drop needs a float reference (keras, float32.tflite or float16.tflite), "
                         "none ran")
        if min_agreement is not None and r.get("agreement") is not None and r["agreement"] < min_agreement:
            fails.append(f"{tag}: agreement {r['agreement']:.4f} is below --min-agreement {min_agreement}")
        if max_p50_ms is not None and r["variant"] != "keras" and r["latency_ms"]["p50"] > max_p50_ms:
            fails.append(f"{tag}: p50 {r['latency_ms']['p50']:.3f} ms exceeds --max-p50-ms {max_p50_ms}")
        if max_size_kb is not None and r["variant"] != "keras" and r["size_bytes"] / 1024 > max_size_kb:
            fails.append(f"{tag}: size {r['size_bytes'] / 1024:.1f} KB exceeds --max-size-kb {max_size_kb}")
    return fails


# ---- compare ----------------------------------------------------------------------------------
#: p50 noise margin for --compare: two back-to-back runs on an idle machine differ by less than
#: this (measured and stated in docs/bench.md); a larger slowdown is flagged as a regression.
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
        out.append(
            {
                "variant": r["variant"],
                "threads": r["threads"],
                "d_accuracy": d_acc,
                "d_p50_ms": p50 - bp50,
                "d_p50_rel": rel,
                "d_size_bytes": r["size_bytes"] - b["size_bytes"],
                "regression": bool(flags),
                "flags": flags,
            }
        )
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
    ("vs edge-wbc", "client_agreement", lambda r: _f(r.get("client_agreement"), ".4f")),
    ("ECE", "ece", lambda r: _f(r["ece"], ".4f")),
    ("unc %", "uncertain_share", lambda r: _f(100 * r["uncertain_share"] if r.get("uncertain_share") is not None
                                              else None, ".1f")),
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
    clients = any(r.get("client_agreement") is not None or r.get("client", "edge-wbc") != "edge-wbc"
                  for r in report["rows"])
    cols = [c for c in TABLE_COLS
            if (c[0] != "roof %" or report.get("roofline")) and (c[0] != "vs edge-wbc" or clients)]
    return [c[0] for c in cols], [[c[2](r) for c in cols] for r in report["rows"]]


def sample_note(report: dict) -> str:
    """`` (stratified sample of N of M, seed S)`` when --limit took a sample, else empty."""
    s = report.get("limit_sample")
    return f" (stratified sample of {s['n']} of {s['of']}, seed {s['seed']})" if s else ""


def to_markdown(report: dict) -> str:
    head, body = table_rows(report)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(x.replace("|", "/") for x in row) + " |" for row in body]
    d = report["device"]
    lines.append("")
    lines.append(f"{report['dataset']} {report['split']} split, n={report['n']}{sample_note(report)}; "
                 f"reference: {report['reference']}; "
                 f"{d['cpu']} ({d['cores']} cores), {d['interpreter']} {d['interpreter_version']}; "
                 f"batch 1, {report['config']['runs']} runs after {report['config']['warmup']} warm-up.")
    if report.get("reference_note"):
        lines.append(f"\n{report['reference_note']}.")
    if report.get("sample"):
        s = report["sample"]
        lines.append(f"\nOn the embedded sample: {s['name']} {s['split']} n={s['n']} ({s['source']}; {s['license']}).")
    errors = [f"- {r['variant']}: {r['error']}" for r in report["rows"] if r["status"] != "ok"]
    return "\n".join(lines + (["", "Failed variants:"] + errors if errors else [])) + "\n"


def to_csv(report: dict) -> str:
    """One line per row; a report of several groups (models benched on their own datasets) adds a
    leading ``group`` column."""
    buf = io.StringIO()
    flat_keys = [k for k in ROW_KEYS if k not in ("latency_ms", "per_class_recall", "disagreements")]
    if report.get("groups"):
        flat_keys = ["group", *flat_keys]
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
    ax.set_ylabel(f"accuracy ({report['split']}, each model on its own dataset)" if report.get("groups") else
                  f"accuracy ({report['dataset']} {report['split']}, n={report['n']})")
    ax.set_title("edge-wbc bench: accuracy vs latency (marker area ~ file size)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
