"""Choose the field detector's decode rule on val fields: map threshold, smallest WBC component, lowest
mean probability of a component. Grid search for the best mean F1 (IoU >= 0.5) over the sources' val
splits; never reads a test split. The rule chosen is ``DETECTOR_DECODE`` in ``edge_wbc/defaults.py``.

    EDGE_WBC_DATA=../shared/data python benchmarks/detect_decode.py runs/det/int8.tflite --sources bccd,smartphone_pig
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_eval import match  # noqa: E402

from edge_wbc.data import data_root  # noqa: E402
from edge_wbc.data.fields import field_list  # noqa: E402
from edge_wbc.defaults import DETECTOR_OVERLAP  # noqa: E402
from edge_wbc.preprocess import load_image  # noqa: E402
from edge_wbc.runtime import TFLiteSegmenter  # noqa: E402
from edge_wbc.runtime.components import component_boxes  # noqa: E402
from edge_wbc.tasks.fieldsets import resample  # noqa: E402
from edge_wbc.tasks.scale import field_scale  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
MIN_AREAS = (30, 50, 70, 100, 130)
MIN_MEANS = (0.0, 0.8, 0.85, 0.9, 0.93)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("detector")
    ap.add_argument("--sources", default="bccd,smartphone_pig")
    ap.add_argument("--split", default="val", choices=("train", "val"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    det = TFLiteSegmenter(a.detector, num_threads=2)
    um = float(det.spec.metrics["um_per_px"])
    grow = 1.0 / float(det.spec.metrics.get("target_shrink", 0.8))
    fields = []
    for f in field_list(data_root(a.data), tuple(a.sources.split(",")), a.split):
        img = load_image(f.path)
        fs = field_scale(img, um * det.spec.input_width / img.width)
        comps = []
        if not fs.unusable:
            s = fs.um_per_px / um
            prob = det.predict_windows(np.asarray(resample(img, s).convert("RGB")), DETECTOR_OVERLAP)[..., 0]
            for thr in THRESHOLDS:
                for (x0, y0, x1, y1), p, area in component_boxes(prob > thr, min(MIN_AREAS), prob):
                    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, grow * (x1 - x0) / 2, grow * (y1 - y0) / 2
                    comps.append((thr, [(cx - hw) / s, (cy - hh) / s, (cx + hw) / s, (cy + hh) / s], area, p))
        fields.append((f.source, list(f.boxes), comps))
    rows = []
    for thr, amin, pmin in itertools.product(THRESHOLDS, MIN_AREAS, MIN_MEANS):
        per = {}
        for src in sorted({f[0] for f in fields}):
            tp = n_gt = n_pred = 0
            for s, gt, comps in fields:
                if s == src:
                    pred = [b for t, b, ar, p in comps if t == thr and ar >= amin and p >= pmin]
                    tp, n_gt, n_pred = tp + match(gt, pred), n_gt + len(gt), n_pred + len(pred)
            per[src] = {"recall": tp / n_gt if n_gt else 0.0, "precision": tp / n_pred if n_pred else 0.0}
        f1 = float(np.mean([2 * r["recall"] * r["precision"] / (r["recall"] + r["precision"] + 1e-9)
                            for r in per.values()]))
        rows.append({"threshold": thr, "min_area_px": amin, "min_mean_prob": pmin, "mean_f1": f1, "per_source": per})
    rows.sort(key=lambda r: -r["mean_f1"])
    for r in rows[:8]:
        print(json.dumps(r))
    if a.json:
        Path(a.json).write_text(json.dumps({"detector": a.detector, "split": a.split, "best": rows[0], "grid": rows},
                                           indent=1) + "\n")


if __name__ == "__main__":
    main()
