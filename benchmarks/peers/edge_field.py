"""The field classifier's side of the classification table (edge-wbc venv).

- LOSO top-1 per held-out source: read from ``docs/results/loso.json`` (``edge-wbc loso --sources
  pbc128,bccd,wbcseg --epochs 10 --steps 100``): int8 and float on all of the held-out source, and
  float on its test split (``adapt.before``).
- The same fold models' float top-1 on the held-out test split of the *current* crops (the crops the
  peers were trained and tested on), from ``docs/results/ood_loso.json`` (``benchmarks/ood_loso.py``).
- Size and p50 at 1 thread of the shipped bundle ``android_assets/wbc_field_int8.tflite`` (and the
  float16 sibling): batch 1, one 64 px crop of the exported cells, 20 warm-up + 200 timed invokes,
  wall clock and thread CPU time, as ``timm_loso.py`` times the peers.

    PYTHONPATH=. taskset -c 1 python benchmarks/peers/edge_field.py --json ~/.cache/edge-wbc/peers/edge_field.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from export_data import cache

REPO = Path(__file__).resolve().parents[2]


def time_model(path: Path, x: np.ndarray) -> dict:
    from edge_wbc.runtime import TFLiteClassifier

    clf = TFLiteClassifier(path, num_threads=1)
    for _ in range(20):
        clf.predict(x)
    ts, cs = [], []
    for _ in range(200):
        t, c = time.perf_counter(), time.thread_time()
        clf.predict(x)
        ts.append((time.perf_counter() - t) * 1e3)
        cs.append((time.thread_time() - c) * 1e3)
    return {"file": path.name, "size_kb": path.stat().st_size / 1024,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "p50_ms_1thread": float(np.median(ts)), "p50_cpu_ms_1thread": float(np.median(cs))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loso", default=str(REPO / "docs" / "results" / "loso.json"))
    ap.add_argument("--ood-loso", default=str(REPO / "docs" / "results" / "ood_loso.json"),
                    help="the same LOSO fold models on the current crops' held-out test split (float)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    z = np.load(cache() / "crops" / "cells.npz")
    x = z["x64"][np.flatnonzero(z["split"] == "test")[:1]]
    loso = json.loads(Path(a.loso).read_text())
    res = {"model": "wbc_field (fieldnet)", "loso_file": str(Path(a.loso).relative_to(REPO)),
           "loso_hparams": loso["hparams"], "folds": {}}
    for s, f in loso["folds"].items():
        res["folds"][s] = {"train_sources": f["train_sources"], "n_all": f["int8"]["n"],
                           "int8_top1_all": f["int8"]["top1"], "float_top1_all": f["float"]["top1"],
                           "float_top1_test": f["adapt"]["before"], "test_n": f["adapt"]["test_n"],
                           "int8_macro_f1_all": f["int8"]["macro_f1"]}
    ood = Path(a.ood_loso)
    if ood.is_file():  # benchmarks/ood_loso.py re-crops with the current segmenter: the peers' test crops
        for s, f in json.loads(ood.read_text())["folds"].items():
            if s in res["folds"]:
                res["folds"][s]["float_top1_test_current_crops"] = f["top1"]
                res["folds"][s]["test_n_current_crops"] = f["n_test"]
        res["ood_loso_file"] = str(ood.relative_to(REPO))
    res["int8"] = time_model(REPO / "android_assets" / "wbc_field_int8.tflite", x)
    fp16 = REPO / "android_assets" / "wbc_field_float16.tflite"
    if fp16.is_file():
        res["float16"] = time_model(fp16, x)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
