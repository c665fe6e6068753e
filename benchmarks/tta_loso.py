"""Test-time augmentation on the LOSO fold models: does averaging 8 flipped / turned views help a
held-out microscope? (Measured, not adopted: see docs/field.md.)

Each fold's int8 model (``edge-wbc loso ... --out runs/loso``: ``runs/loso/holdout_S/int8.tflite``)
classifies the field classifier's 64 px WBC-centred crops of every cell of its held-out source S (at
most ``--n`` drawn, seed 0) and of the other sources' test splits (at most 600), once plainly and once
as the mean probability of the 8 dihedral views. The crops are ``benchmarks/peers/export_data.py
crops``' cache (``cells.npz``: edge-wbc's own crops of pbc128, bccd and wbcseg).

    python benchmarks/tta_loso.py --runs runs/loso --crops ~/.cache/edge-wbc/peers/crops/cells.npz --json OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_wbc.runtime import TFLiteClassifier


def views(x: np.ndarray) -> list[np.ndarray]:
    v = [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    return [np.ascontiguousarray(a) for a in v + [np.rot90(a, 1, axes=(1, 2)) for a in v]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/loso")
    ap.add_argument("--crops", default=str(Path.home() / ".cache/edge-wbc/peers/crops/cells.npz"))
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    d = np.load(a.crops)
    x, y, src, split = d["x64"], d["y"], d["src"], d["split"]
    rng = np.random.default_rng(0)
    out = {}
    for held in ("bccd", "wbcseg", "pbc128"):
        clf = TFLiteClassifier(Path(a.runs) / f"holdout_{held}" / "int8.tflite", num_threads=2)
        sel = np.nonzero(src == held)[0]
        sel = np.sort(rng.choice(sel, a.n, replace=False)) if len(sel) > a.n else sel
        ins = np.nonzero((src != held) & (split == "test"))[0]
        ins = np.sort(rng.choice(ins, 600, replace=False)) if len(ins) > 600 else ins
        res = {}
        for name, idx in (("held_out", sel), ("in_source_test", ins)):
            plain = clf.predict(x[idx]).argmax(1)
            tta = np.mean([clf.predict(v) for v in views(x[idx])], 0).argmax(1)
            res[name] = {"n": int(len(idx)), "plain": round(float((plain == y[idx]).mean()), 4),
                         "tta8": round(float((tta == y[idx]).mean()), 4)}
        out[held] = res
        print(held, res, flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
