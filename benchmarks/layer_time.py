"""Per-op time against the whole model, for every shipped int8 ``.tflite``
(:func:`edge_wbc.bench.layertime.layer_times`, what ``edge-wbc inspect --time`` runs).

Each op runs alone, on the values its inputs had in one run of the whole model, timed in the same
rounds as the whole model (1 thread). ``sum_vs_whole`` = sum of the ops' p50 / the whole model's p50 - 1;
the target is within 10 %. Each model is measured ``--repeats`` times.

    taskset -c 1 python benchmarks/layer_time.py --json docs/results/layer_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "android_assets"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="int8 .tflite files (default: every android_assets/*_int8.tflite)")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this thread's CPU time, which leaves out time another process held the core")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    from edge_wbc.bench.layertime import layer_times
    from edge_wbc.runtime import interpreter_backend

    paths = [Path(p) for p in a.models] if a.models else sorted(ASSETS.glob("*_int8.tflite"))
    out = {"runs": a.runs, "threads": 1, "clock": a.clock, "interpreter": " ".join(interpreter_backend()[1:]),
           "cpu": platform.processor() or platform.machine(), "load_avg_1m_at_start": os.getloadavg()[0],
           "models": []}
    for p in paths:
        reps = []
        for _ in range(a.repeats):
            r = layer_times(p.read_bytes(), runs=a.runs, clock=a.clock)
            reps.append({k: r[k] for k in ("whole_ms", "sum_ms", "sum_vs_whole")})
            errors = [x for x in r["layers"] if "error" in x]
        top = max(r["layers"], key=lambda x: x["p50_ms"])
        row = {"model": p.name, "ops": len(r["layers"]), "ops_failed": len(errors), "repeats": reps,
               "worst_abs_sum_vs_whole": max(abs(x["sum_vs_whole"]) for x in reps),
               "top_op": {k: top[k] for k in ("index", "op", "share", "macs")}}
        out["models"].append(row)
        print(f"{p.name:24s} ops {row['ops']:3d} failed {row['ops_failed']}  "
              + "  ".join(f"whole {x['whole_ms']:.3f} sum {x['sum_ms']:.3f} ({100 * x['sum_vs_whole']:+.1f} %)"
                          for x in reps), flush=True)
    out["worst_abs_sum_vs_whole"] = max(m["worst_abs_sum_vs_whole"] for m in out["models"])
    print(f"worst |sum vs whole|: {100 * out['worst_abs_sum_vs_whole']:.1f} %")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
