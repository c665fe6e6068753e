"""Speed of `edge-wbc count` with no flags, per field, 1 thread, int8: decode -> scale -> detect -> crop+classify.

Per source, p50 and p90 in ms of each stage and of the whole, over the first ``--n`` images of each held-out
set (BCCD test, the 13 masked SigTuple test fields, smartphone_pig test, wbc_seg single cells). Not a test:
the figures depend on the machine and its load (say which when you report them).

    EDGE_WBC_DATA=../shared/data python benchmarks/count_speed.py [--n 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from edge_wbc.assets import DEFAULT_CLASSIFIER, DEFAULT_DETECTOR, SMALL_FIELD_DETECTOR
from edge_wbc.data import data_root
from edge_wbc.data.segdata import bccd_split_names, sigtuple_test_fields
from edge_wbc.tasks.count import SmearCounter

REPO = Path(__file__).resolve().parents[1]
STAGES = ("decode", "scale", "detect", "classify")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--detector", default=None,
                    help=f"default: the shipped {DEFAULT_DETECTOR}, as count uses; 'nuclei': the nucleus rule alone")
    ap.add_argument("--nuclei", action=argparse.BooleanOptionalAction, default=True,
                    help="with the field detector, add the stained nuclei it missed (count's default)")
    ap.add_argument("--classifier", default=None, help=f"default: the shipped {DEFAULT_CLASSIFIER}, as count uses")
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    root = data_root(a.data)
    A = REPO / "android_assets"
    sc = SmearCounter(a.detector or A / DEFAULT_DETECTOR, a.classifier or A / DEFAULT_CLASSIFIER, threads=1,
                      cell_model=A / "wbc_unet_int8.tflite", nuclei=a.nuclei,
                      small_detector=A / SMALL_FIELD_DETECTOR if a.detector is None else None)
    srcs = {
        "bccd": [root / "bccd/BCCD/JPEGImages" / f"{n}.jpg" for n in bccd_split_names(root / "bccd")["test"]],
        "sigtuple": [i for i, _ in sigtuple_test_fields(root)],
        "smartphone_pig": sorted((root / "smartphone_pig/test/images").glob("*.jpg")),
        "wbc_seg": sorted((root / "wbc_seg/dataset1").glob("*.bmp")),
    }
    sc.count_image(srcs["bccd"][0])  # warm-up
    res = {"threads": 1, "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0], "sources": {}}
    for name, paths in srcs.items():
        rows = []
        for p in paths[: a.n]:
            t: dict = {}
            sc.count_image(p, timings=t)
            rows.append({k: 1e3 * t.get(k, 0.0) for k in STAGES} | {"total": 1e3 * sum(t.values())})
        res["sources"][name] = {"fields": len(rows), **{
            k: {"p50": round(float(np.percentile([r[k] for r in rows], 50)), 1),
                "p90": round(float(np.percentile([r[k] for r in rows], 90)), 1)} for k in (*STAGES, "total")}}
        print(name, "total p50", res["sources"][name]["total"]["p50"], "ms, p90", res["sources"][name]["total"]["p90"])
    res["load_avg_1min_end"] = os.getloadavg()[0]
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
