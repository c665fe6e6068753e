"""Leave-one-source-out detection: each fold's field detector on the test split of every field source.

Folds (``edge-wbc train unet --dataset fields:bccd,smartphone_pig,sigtuple --holdout S``, then
``edge-wbc convert DIR --mode int8``): one model per held-out source S. Each is scored with
``benchmarks/count_eval.py``'s scorer (recall and precision at IoU >= 0.5, count MAE, exact-count
share, p50 / p90 ms per field at 1 thread, decode to classify) on the test split of all three
sources; the held-out column is the one that matters. The shipped detector is the SigTuple-held-out
fold (SigTuple cannot be shipped), so its SigTuple column is off-source too.

    EDGE_WBC_DATA=../shared/data python benchmarks/detect_loso.py --fold sigtuple=runs/det_ho_sigtuple \
        --fold smartphone_pig=runs/det_ho_pig --fold bccd=runs/det_ho_bccd --json docs/results/detect_loso.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_eval import evaluate  # noqa: E402

SOURCES = ("bccd", "sigtuple", "smartphone_pig")
KEEP = ("smears", "gt_wbc", "detected", "recall", "precision", "count_mae", "exact_count_share",
        "ms_per_smear_p50", "ms_per_smear_p90", "flags")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", action="append", required=True, help="HELDOUT=MODEL_DIR (its int8.tflite)")
    ap.add_argument("--classifier", default=None, help="crop classifier (default: count_eval's bccd4_int8)")
    ap.add_argument("--nuclei-rules", default=None,
                    help="benchmarks/nuclei_detect.py's JSON: each fold adds the stained nuclei its model missed, "
                    "with the nucleus rule chosen on its training sources' val fields (count's default pipeline)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rules = json.loads(Path(a.nuclei_rules).read_text())["folds"] if a.nuclei_rules else None
    out = {"folds": {}, "nuclei": "fold rules from " + a.nuclei_rules if rules else "off (the model alone)"}
    for spec in a.fold:
        held, d = spec.split("=", 1)
        det = Path(d) / "int8.tflite" if Path(d).is_dir() else Path(d)
        rule = rules[f"held_out_{held}"]["rule"] if rules else None
        rows = {}
        for s in SOURCES:
            r = evaluate(s, str(det), a.classifier, data=a.data, nuclei=rule is not None, nuclei_rule=rule)
            rows[s] = {k: r[k] for k in KEEP}
            print(f"held out {held:15s} test {s:15s} recall {r['recall']:.3f} precision {r['precision'] or 0:.3f} "
                  f"MAE {r['count_mae']:.2f} exact {r['exact_count_share']:.2f} p50 {r['ms_per_smear_p50']:.1f} ms",
                  flush=True)
        out["folds"][held] = {"detector": str(det), "nuclei_rule": rule, "test": rows}
    print("\n| held out | " + " | ".join(f"{s} R / P" for s in SOURCES) + " |")
    print("|---|" + "---|" * len(SOURCES))
    for held, f in out["folds"].items():
        cells = []
        for s in SOURCES:
            r = f["test"][s]
            c = f"{r['recall']:.3f} / {r['precision'] or 0:.3f}"
            cells.append(f"**{c}**" if s == held else c)
        print(f"| {held} | " + " | ".join(cells) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
