"""Which detector does `count` run: the field U-Net, the stained-nucleus rule, or both? Chosen on the
held-out sources' **val** fields, leave-one-source-out.

For each fold (a U-Net trained without source S, and the nucleus rule chosen on the other sources' val
fields by ``benchmarks/nuclei_detect.py``), every val and test field of the three sources, at the
canonical scale (the cached fields of :func:`edge_wbc.tasks.fieldsets.canonical_fields`), is scored at
IoU >= 0.5 under four ways of combining them:

- ``unet``: the U-Net alone (``count --no-nuclei``);
- ``nuclei``: the rule alone (``count --detector nuclei``);
- ``unet+nuclei``: the U-Net, plus the nuclei it missed (not covered by one of its boxes: ``count``'s default);
- ``nuclei+unet``: the nuclei, plus the U-Net boxes that cover none of them.

The choice is the combination with the best mean F1 over the folds' **held-out val** fields (each fold's
S val split: the source its models never saw, as the field detector's augmentation was chosen); the test
fields are reported after. Scores the detectors alone; ``benchmarks/detect_loso.py --nuclei-rules``
scores the chosen pipeline end to end through ``count``.

    EDGE_WBC_DATA=../shared/data python benchmarks/detect_combine.py \
        --fold sigtuple=android_assets/wbc_det_int8.tflite --fold smartphone_pig=runs/det_ho_pig \
        --fold bccd=runs/det_ho_bccd \
        --nuclei-rules docs/results/nuclei_detect.json --json docs/results/detect_combine.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_eval import match  # noqa: E402

from edge_wbc.runtime import TFLiteSegmenter  # noqa: E402
from edge_wbc.runtime.nuclei import NucleusRule, covered, detect_nuclei  # noqa: E402
from edge_wbc.tasks.fieldsets import canonical_fields, detect_wbcs  # noqa: E402

SOURCES = ("bccd", "smartphone_pig", "sigtuple")
MODES = ("unet", "nuclei", "unet+nuclei", "nuclei+unet")


def combine(unet: list, nuclei: list, mode: str) -> list:
    u, n = [b for b, _ in unet], [b for b, _ in nuclei]
    return {"unet": u, "nuclei": n, "unet+nuclei": u + [b for b in n if not covered(b, u)],
            "nuclei+unet": n + [b for b in u if not covered(b, n)]}[mode]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", action="append", required=True, help="HELDOUT=MODEL_DIR or .tflite (int8)")
    ap.add_argument("--nuclei-rules", required=True, help="benchmarks/nuclei_detect.py's JSON (each fold's rule)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rules = json.loads(Path(a.nuclei_rules).read_text())["folds"]
    fields = [f for f in canonical_fields(SOURCES, a.data, log=print) if f.split in ("val", "test")]
    out = {"folds": {}}
    for spec in a.fold:
        held, d = spec.split("=", 1)
        path = Path(d) / "int8.tflite" if Path(d).is_dir() else Path(d)
        det = TFLiteSegmenter(path, num_threads=1)
        rule = NucleusRule.from_dict(rules[f"held_out_{held}"]["rule"])
        found = [(detect_wbcs(det, Image.fromarray(f.image), 1.0), detect_nuclei(f.image, rule)) for f in fields]
        res = {}
        for mode in MODES:
            for s in SOURCES:
                for split in ("val", "test"):
                    tp = gt = n = 0
                    for f, (u, nu) in zip(fields, found):
                        if f.source == s and f.split == split:
                            boxes = combine(u, nu, mode)
                            tp, gt, n = tp + match([list(b) for b in f.boxes], boxes), gt + len(f.boxes), n + len(boxes)
                    r, p = tp / max(gt, 1), tp / max(n, 1)
                    f1 = 2 * r * p / (r + p) if r + p else 0.0
                    res.setdefault(mode, {}).setdefault(split, {})[s] = {
                        "recall": round(r, 4), "precision": round(p, 4), "f1": round(f1, 4)}
        out["folds"][held] = {"detector": str(path), "nuclei_rule": rule.to_dict(), "modes": res}
        print(f"held out {held}: " + "  ".join(f"{m} val F1 {res[m]['val'][held]['f1']:.3f}" for m in MODES),
              flush=True)
    score = {m: float(np.mean([f["modes"][m]["val"][h]["f1"] for h, f in out["folds"].items()])) for m in MODES}
    out["held_out_val_mean_f1"] = {m: round(v, 4) for m, v in score.items()}
    out["chosen"] = max(score, key=score.get)
    print("\nmean F1 on the held-out sources' val fields: " + ", ".join(f"{m} {v:.3f}" for m, v in score.items())
          + f" -> {out['chosen']}")
    print("\n| held out | " + " | ".join(f"{m} (held-out test R / P)" for m in MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for held, f in out["folds"].items():
        cells = [f"{f['modes'][m]['test'][held]['recall']:.3f} / {f['modes'][m]['test'][held]['precision']:.3f}"
                 for m in MODES]
        print(f"| {held} | " + " | ".join(cells) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
