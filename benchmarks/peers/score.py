"""Score prediction files with edge-wbc's own scorers (edge-wbc venv): one code path for every model.

- ``count PREDS.json [...]``: boxes per field (``edge_count.py`` or ``yolo_count.py predict``) against
  the field manifest's ground truth with ``benchmarks/count_eval.match`` (greedy, IoU >= 0.5):
  recall, precision, count MAE, exact-count share, and the p50 / p90 ms per field. A detector's
  confidence threshold is chosen on its own val predictions (``--choose-on bccd:val``: the threshold
  of a grid that maximises F1 there) and then applied to every test source; without val predictions
  the file's own threshold is kept.
- ``classify PROBS.npz [...]``: class probabilities per crop against the exported labels with
  ``edge_wbc.training.loso.summarize`` (top-1, macro-F1, per-class recall, ECE).

    PYTHONPATH=. python benchmarks/peers/score.py count preds/yolo_bccd.json --json docs/results/peers_count.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from count_eval import match  # noqa: E402  (edge-wbc's count scorer)
from export_data import cache  # noqa: E402

CONF_GRID = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))


def score_fields(rows: list[dict], gt: dict[str, list], conf: float = 0.0) -> dict:
    tp = n_gt = n_pred = 0
    err, ms, cpu = [], [], []
    for r in rows:
        g = [tuple(b) for b in gt[r["image"]]]
        p = [tuple(b[:4]) for b in r["boxes"] if (b[4] if len(b) > 4 else 1.0) >= conf]
        tp += match(g, p)
        n_gt += len(g)
        n_pred += len(p)
        err.append(abs(len(p) - len(g)))
        ms.append(r.get("ms", np.nan))
        cpu.append(r.get("cpu_ms", np.nan))
    return {
        "fields": len(rows), "gt_wbc": n_gt, "detected": n_pred, "true_positives": tp,
        "recall": tp / n_gt if n_gt else None, "precision": tp / n_pred if n_pred else None,
        "count_mae": float(np.mean(err)), "exact_count_share": float(np.mean([e == 0 for e in err])),
        "ms_per_field_p50": float(np.nanpercentile(ms, 50)), "ms_per_field_p90": float(np.nanpercentile(ms, 90)),
        "cpu_ms_per_field_p50": float(np.nanpercentile(cpu, 50)) if not np.all(np.isnan(cpu)) else None,
    }


def f1(s: dict) -> float:
    r, p = s["recall"] or 0.0, s["precision"] or 0.0
    return 2 * r * p / (r + p) if r + p else 0.0


def score_count(preds: dict, choose_on: str | None) -> dict:
    man = json.loads((cache() / "fields" / "manifest.json").read_text())
    gt = {r["image"]: r["boxes"] for src in man.values() for rows in src.values() for r in rows}
    conf, chosen = preds.get("conf", 0.0), None
    if choose_on and choose_on in preds["sources"]:
        grid = [(f1(score_fields(preds["sources"][choose_on], gt, c)), c) for c in CONF_GRID]
        best = max(grid)  # ties: the higher threshold
        conf, chosen = best[1], {"on": choose_on, "f1": best[0], "grid": list(CONF_GRID)}
    out = {k: v for k, v in preds.items() if k != "sources"}
    out |= {"conf": conf, "conf_chosen": chosen, "scorer": "benchmarks/count_eval.match (IoU >= 0.5, greedy)",
            "sources": {k: score_fields(v, gt, conf) for k, v in preds["sources"].items()}}
    return out


def score_classify(path: Path) -> dict:
    from edge_wbc.training.loso import summarize

    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    y = np.load(cache() / "crops" / "cells.npz")["y"]
    out = dict(meta)
    for k in z.files:
        if k.startswith("probs__"):  # probs__<set>: <set> = heldout_all | heldout_test | ...
            idx = z[k.replace("probs__", "idx__")]
            out[k.replace("probs__", "")] = summarize(z[k], y[idx])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("count", "classify"))
    ap.add_argument("files", nargs="+")
    ap.add_argument("--choose-on", default="bccd:val")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.what == "count":
        res = [score_count(json.loads(Path(f).read_text()), a.choose_on) for f in a.files]
    else:
        res = [score_classify(Path(f)) for f in a.files]
    text = json.dumps(res, indent=2, default=float)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
