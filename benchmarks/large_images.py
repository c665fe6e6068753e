"""Classifying a large image of one WBC: the crop around the WBC segmenter's find vs around the largest
stained nucleus (``classify``'s path for images of at least 400 px since session 16).

The images: BCCD's 640x480 smear fields with exactly one WBC box and a subtype the model knows (each
labelled with BCCD's per-image class). Per split, top-1 of the raw argmax with each crop, and with the
default path (``CellAnswerer``: flags and the uncertain rule) its coverage and answered accuracy. Run it
on the shipped model (BCCD is one of its training sources, but it never saw a 640x480 field) and on the
LOSO fold model trained without BCCD (``runs/loso/holdout_bccd/int8.tflite``): a new microscope too.

    python benchmarks/large_images.py [-m MODEL] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_eval import bccd_smears  # noqa: E402

from edge_wbc.assets import default_classifier, resolve_model  # noqa: E402
from edge_wbc.data import data_root  # noqa: E402
from edge_wbc.preprocess import load_image  # noqa: E402
from edge_wbc.runtime import UNCERTAIN, TFLiteClassifier  # noqa: E402
from edge_wbc.tasks.cells import CellAnswerer, locate_wbc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    clf = TFLiteClassifier(resolve_model(a.model) if a.model else default_classifier())
    answerer = CellAnswerer(clf)
    root = data_root(a.data)
    out = {"model": str(clf.path), "splits": {}}
    for split in ("train", "val", "test"):
        rows = []
        for path, gt, sub in bccd_smears(root / "bccd", split):
            if sub not in clf.labels or len(gt) != 1:
                continue
            img = load_image(path)
            loc = locate_wbc(img)
            finder = clf.labels[int(clf.predict_image(img).probs.argmax())]
            nucleus = clf.labels[int(clf.predict_image(img, box=loc.box).probs.argmax())] if loc else finder
            ans = answerer.answer_image(img)
            rows.append((sub, finder, nucleus, ans.prediction, "|".join(ans.flags)))
        y = np.array([r[0] for r in rows])
        answered = np.array([r[3] != UNCERTAIN for r in rows])
        out["splits"][split] = {
            "images": len(rows),
            "top1_finder_crop": round(float(np.mean([r[1] == r[0] for r in rows])), 4),
            "top1_nucleus_crop": round(float(np.mean([r[2] == r[0] for r in rows])), 4),
            "default_coverage": round(float(answered.mean()), 4),
            "default_answered_accuracy": round(float(np.mean([r[3] == r[0] for r in rows if r[3] != UNCERTAIN])), 4)
            if answered.any() else None,
            "default_not_a_single_cell": int(sum("not_a_single_cell" in r[4] for r in rows)),
            "classes": {c: int((y == c).sum()) for c in sorted(set(y))},
        }
        print(split, out["splits"][split], flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
