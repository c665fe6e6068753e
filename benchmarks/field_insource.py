"""The shipped field model on each source's test split (canonical crops, as `classify` sees them):
int8 and float16 top-1, macro-F1, answered-wrong and coverage under the bundle's own uncertain rule;
the share of cells flagged by the OOD score, by the image-quality checks and by any flag (the
confidence rule included), and coverage / answered-wrong when every flag abstains.

    python benchmarks/field_insource.py --json docs/results/field_insource.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge_wbc.assets import resolve_model
from edge_wbc.runtime import TFLiteClassifier
from edge_wbc.runtime.quality import QualityLimits, image_flags
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
            x = to_model_size(cc.x[m], (clf.spec.input_height, clf.spec.input_width))
            p, f = clf.predict_features(x)
            res[s] = summarize(p, cc.y[m], r.temperature, r.threshold)
            ood = clf.ood.is_ood(f) if clf.ood is not None else np.zeros(len(x), bool)
            limits = QualityLimits.from_dict((clf.spec.metrics or {}).get("quality"))
            qual = np.array([bool(image_flags(xi, None, clf.spec.input_height, limits)) for xi in x])
            q = r.calibrate(p)
            conf_ok = q.max(1) >= r.threshold
            ok = conf_ok & ~ood & ~qual & cc.found[m]
            pred = q.argmax(1)
            res[s].update(ood_flagged=float(ood.mean()), quality_flagged=float(qual.mean()),
                          no_wbc=float((~cc.found[m]).mean()), any_flag=float((~ok).mean()),
                          all_flags_coverage=float(ok.mean()),
                          all_flags_answered_wrong=float((ok & (pred != cc.y[m])).mean()))
        out[name] = {"rule": {"temperature": r.temperature, "uncertain_below": r.threshold}, "test": res}
        print(
            name,
            {s: (round(v["top1"], 4), round(v["coverage"], 3), round(v["answered_wrong"], 4), "ood",
                 round(v["ood_flagged"], 3), "quality", round(v["quality_flagged"], 3), "any", round(v["any_flag"], 3))
             for s, v in res.items()},
        )
    # int8 vs float16 OOD decisions on the same crops (each with its own statistics), and the cost of
    # the score per cell at 1 thread against the model's own p50
    names = a.models.split(",")
    if len(names) == 2:
        m = cc.split == "test"
        x = to_model_size(cc.x[m], (64, 64))
        dec = []
        for name in names:
            c = TFLiteClassifier(resolve_model(name))
            dec.append(c.ood.is_ood(c.predict_features(x)[1]))
        agree = float((dec[0] == dec[1]).mean())
        out["ood_decision_agreement"] = {"models": names, "n": int(m.sum()), "agreement": agree}
        print("OOD decisions, int8 vs float16:", out["ood_decision_agreement"])
    clf = TFLiteClassifier(resolve_model(names[0]), num_threads=1)
    x1 = to_model_size(cc.x[:1], (clf.spec.input_height, clf.spec.input_width))
    q = clf.quantize_input(x1)
    t_model, t_score = [], []
    for _ in range(300):
        t0 = time.perf_counter()
        clf.invoke_one(q)
        f = clf._features()
        t1 = time.perf_counter()
        clf.ood.score(f)
        t_score.append(time.perf_counter() - t1)
        t_model.append(t1 - t0)
    pm, ps = float(np.median(t_model)) * 1e3, float(np.median(t_score)) * 1e3
    out["ood_overhead"] = {"model": names[0], "threads": 1, "model_p50_ms": pm, "score_p50_ms": ps, "ratio": ps / pm}
    print("OOD overhead:", out["ood_overhead"])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
