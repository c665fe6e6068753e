"""Summarize QAT vs PTQ int8 over seeds from `edge-wbc bench --json` files (scripts/qat_vs_ptq_seeds.sh).

Rows named ``ptq_s<seed>.tflite`` and ``qat_s<seed>.tflite`` are paired by seed. For each split:
accuracy per seed, mean and standard deviation per mode, the paired QAT - PTQ difference, and the
count of seeds where QAT >= PTQ.

    python benchmarks/qat_vs_ptq.py val.json test.json [--json summary.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def summarize(bench: dict) -> dict:
    acc = {}
    for r in bench["rows"]:
        m = re.fullmatch(r"(ptq|qat)_s(\d+)\.tflite", Path(r["variant"]).name)
        if m and r.get("status") == "ok" and r.get("threads", 1) == 1:
            acc.setdefault(int(m[2]), {})[m[1]] = r["accuracy"]
    ref = next((r["accuracy"] for r in bench["rows"] if r["variant"] == bench.get("reference")), None)
    seeds = sorted(s for s, v in acc.items() if {"ptq", "qat"} <= set(v))
    if not seeds:
        raise SystemExit("no ptq_s<N>/qat_s<N> pairs in the bench rows")
    ptq, qat = [acc[s]["ptq"] for s in seeds], [acc[s]["qat"] for s in seeds]
    diff = [q - p for p, q in zip(ptq, qat)]
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    return {"split": bench.get("split"), "n": bench.get("n"), "float": ref, "seeds": seeds, "ptq": ptq, "qat": qat,
            "ptq_mean": statistics.mean(ptq), "ptq_sd": sd(ptq), "qat_mean": statistics.mean(qat), "qat_sd": sd(qat),
            "diff_mean": statistics.mean(diff), "diff_sd": sd(diff), "qat_ge_ptq": sum(d >= 0 for d in diff),
            "qat_ge_every_ptq": sum(q >= max(ptq) for q in qat)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_json", nargs="+")
    ap.add_argument("--json")
    a = ap.parse_args()
    out = []
    for f in a.bench_json:
        s = summarize(json.loads(Path(f).read_text()))
        out.append(s)
        print(
            f"{s['split']} (n={s['n']}), float "
            + (f"{s['float']:.4f}" if s["float"] is not None else "(no reference row)")
        )
        for seed, p, q in zip(s["seeds"], s["ptq"], s["qat"]):
            print(f"  seed {seed}: PTQ {p:.4f}  QAT {q:.4f}  QAT-PTQ {100 * (q - p):+.2f} pt")
        print(
            f"  PTQ {s['ptq_mean']:.4f} ± {s['ptq_sd']:.4f}, QAT {s['qat_mean']:.4f} ± {s['qat_sd']:.4f}, "
            f"QAT-PTQ {100 * s['diff_mean']:+.2f} ± {100 * s['diff_sd']:.2f} pt, QAT >= PTQ in "
            f"{s['qat_ge_ptq']}/{len(s['seeds'])} seeds"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
