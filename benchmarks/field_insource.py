"""The shipped field model on each source's test split (canonical crops, as `classify` sees them):
int8 and float16 top-1, macro-F1, answered-wrong and coverage under the bundle's own uncertain rule.

    python benchmarks/field_insource.py --json docs/results/field_insource.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_wbc.assets import resolve_model
from edge_wbc.runtime import TFLiteClassifier
from edge_wbc.tasks.cellsets import load_cell_crops, to_model_size
from edge_wbc.training.loso import summarize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="wbc_field_int8,wbc_field_float16")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    cc = load_cell_crops(["pbc128", "bccd", "wbcseg"])
    out = {}
    for name in a.models.split(","):
        clf = TFLiteClassifier(resolve_model(name))
        r = clf.rule
        res = {}
        for s in ("pbc128", "bccd", "wbcseg"):
            m = (cc.src == s) & (cc.split == "test")
            p = clf.predict(to_model_size(cc.x[m], (clf.spec.input_height, clf.spec.input_width)))
            res[s] = summarize(p, cc.y[m], r.temperature, r.threshold)
        out[name] = {"rule": {"temperature": r.temperature, "uncertain_below": r.threshold}, "test": res}
        print(
            name,
            {s: (round(v["top1"], 4), round(v["coverage"], 3), round(v["answered_wrong"], 4)) for s, v in res.items()},
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
