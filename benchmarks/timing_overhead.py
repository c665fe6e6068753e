"""How much does edge-wbc bench's timing loop add to invoke()?

Compares, on the same interpreter and the same real input, (a) a bare loop of ``invoke()`` timed as
a whole, and (b) bench's loop (``set_tensor`` outside the window, ``perf_counter_ns`` around each
``invoke()``), whose per-invoke mean is what bench reports. Overhead = (b - a) / a, alternating the
two loops ``--rounds`` times to cancel drift.

    python benchmarks/timing_overhead.py [--model android_assets/bloodmnist_int8.tflite] [--runs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from edge_wbc.data import load_dataset
from edge_wbc.runtime import TFLiteClassifier

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "android_assets" / "bloodmnist_int8.tflite"))
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    clf = TFLiteClassifier(a.model, num_threads=1)
    x = load_dataset(clf.spec.dataset, clf.spec).split("test").images[:64]
    q = [clf.quantize_input(x[i : i + 1]) for i in range(len(x))]
    it, idx = clf.interpreter, clf.input["index"]
    it.set_tensor(idx, q[0])
    for _ in range(200):
        it.invoke()
    bare, timed = [], []
    pc = time.perf_counter_ns
    for _ in range(a.rounds):
        it.set_tensor(idx, q[0])
        t0 = pc()
        for _ in range(a.runs):
            it.invoke()
        bare.append((pc() - t0) / a.runs / 1e6)
        lat = []
        for i in range(a.runs):  # exactly bench's loop (edge_wbc/benchworker.py)
            it.set_tensor(idx, q[i % len(q)])
            t = pc()
            it.invoke()
            lat.append((pc() - t) / 1e6)
        timed.append(float(np.mean(lat)))
    b, t = statistics.median(bare), statistics.median(timed)
    print(f"model {Path(a.model).name}: bare invoke loop {b * 1e3:.2f} us/invoke, bench loop {t * 1e3:.2f} us/invoke "
          f"(median of {a.rounds} rounds x {a.runs}); overhead {100 * (t - b) / b:+.2f} %")


if __name__ == "__main__":
    main()
