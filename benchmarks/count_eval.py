"""Evaluate `edge-wbc count` on held-out smears: BCCD (BCCD/ImageSets/Main/test.txt), or SigTuple.

Localization: every ground-truth WBC box vs the detected boxes, greedy matching at IoU >= 0.5 ->
recall, precision, mean absolute count error per smear. Subtype (BCCD): the largest detected cell of
each smear vs `labels.csv` (rows that are blank or list two subtypes are skipped). Speed: the whole
pipeline (decode, detect, crop, classify) per smear at 1 thread, p50 over the test smears.

``--dataset sigtuple`` runs `edge-wbc count --tile` (the cell U-Net in windows at native scale) on
the 13 official SigTuple test fields that have masks. Their ground-truth boxes are the mask components
at least as large as the smallest WBC mask of the SigTuple training split. There are no subtype labels.
``--no-tile`` shows what the BCCD smear detector does there.

    EDGE_WBC_DATA=../shared/data python benchmarks/count_eval.py [--dataset bccd|sigtuple] [--detector ...] \
        [--classifier ...] [--split test]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from edge_wbc.assets import DEFAULT_DETECTOR, SMALL_FIELD_DETECTOR, detector_for_mode
from edge_wbc.data import data_root
from edge_wbc.data.fields import field_list
from edge_wbc.runtime.nuclei import NucleusRule
from edge_wbc.tasks.count import UNCERTAIN, SmearCounter

REPO = Path(__file__).resolve().parents[1]


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def match(gt, pred, thr=0.5) -> int:
    used, tp = set(), 0
    for g in gt:
        best, bj = 0.0, None
        for j, p in enumerate(pred):
            if j not in used and (v := iou(g, p)) > best:
                best, bj = v, j
        if bj is not None and best >= thr:
            used.add(bj)
            tp += 1
    return tp


def bccd_smears(root: Path, split: str):
    """(path, ground-truth boxes, subtype or None) of the BCCD smears of a split."""
    labels = {}
    with open(root / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            cat = (row.get("Category") or "").strip()
            if cat and "," not in cat:
                labels[f"BloodImage_{int(row['Image']):05d}"] = cat.lower()
    return [(f.path, list(f.boxes), labels.get(f.path.stem)) for f in field_list(root.parent, ("bccd",), split)]


def sigtuple_smears(root: Path):
    return [(f.path, list(f.boxes), None) for f in field_list(root, ("sigtuple",), "test")]


def pig_smears(root: Path, split: str):
    """smartphone_pig fields of a split with their YOLO boxes in pixels (``valid`` is the val split)."""
    split = {"valid": "val"}.get(split, split)
    return [(f.path, list(f.boxes), None) for f in field_list(root, ("smartphone_pig",), split)]


def single_cells(root: Path, name: str, n: int):
    """Single-WBC images (one WBC each, no boxes): wbc_seg dataset1, or PBC crops (pbc128 test)."""
    paths = sorted((root / "wbc_seg" / "dataset1").glob("*.bmp")) if name == "wbc_seg" else sorted(
        (root / "pbc128" / "test").glob("*/*.jpg"))
    paths = [p for p in paths if name == "wbc_seg" or p.parent.name != "platelet"]  # platelets are no WBC
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(paths), min(n, len(paths)), replace=False))
    return [(paths[i], None, None) for i in pick]


def evaluate(dataset: str, detector: str | None = None, classifier: str | None = None, tile: bool | None = None,
             um_per_px: float | None = None, split: str = "test", n: int = 200, data=None, nuclei: bool = True,
             nuclei_rule: dict | None = None) -> dict:
    """Score `edge-wbc count` (the SmearCounter it runs) on one source; the result dict this script prints."""
    # the default detector comes with its small-window sibling, as `edge-wbc count` runs it
    small = REPO / "android_assets" / SMALL_FIELD_DETECTOR if detector is None and tile is None else None
    detector = detector or str(REPO / "android_assets" / detector_for_mode(tile))
    classifier = classifier or str(REPO / "android_assets" / "bccd4_int8.tflite")
    root = data_root(data)
    smears = {"bccd": lambda: bccd_smears(root / "bccd", split), "sigtuple": lambda: sigtuple_smears(root),
              "smartphone_pig": lambda: pig_smears(root, split)[:n],
              "wbc_seg": lambda: single_cells(root, "wbc_seg", n),
              "pbc": lambda: single_cells(root, "pbc", n)}[dataset]()
    sc = SmearCounter(detector, classifier, threads=1, tile=tile, um_per_px=um_per_px,
                      cell_model=REPO / "android_assets" / "wbc_unet_int8.tflite" if tile is None else None,
                      nuclei=nuclei, small_detector=small)
    if nuclei_rule is not None:  # a LOSO fold's own rule (benchmarks/nuclei_detect.py), not the shipped one
        sc.nuclei_rule = NucleusRule.from_dict(nuclei_rule)
    single = dataset in ("wbc_seg", "pbc")
    n_one, sources, flags = 0, {}, {}
    tp = n_gt = n_pred = 0
    count_err, times, sub_ok, sub_n, sub_unc = [], [], 0, 0, 0
    for path, gt, subtype in smears:
        t0 = time.perf_counter()
        r = sc.count_image(path)
        times.append((time.perf_counter() - t0) * 1e3)
        pred = [c["box"] for c in r["cells"]]
        sources[r["scale_source"]] = sources.get(r["scale_source"], 0) + 1
        for f in r["flags"]:
            flags[f] = flags.get(f, 0) + 1
        if single:
            n_one += len(pred) == 1
            continue
        tp += match(gt, pred)
        n_gt += len(gt)
        n_pred += len(pred)
        count_err.append(abs(len(pred) - len(gt)))
        if subtype in sc.clf.labels and r["cells"]:
            main_cell = max(r["cells"], key=lambda c: (c["box"][2] - c["box"][0]) * (c["box"][3] - c["box"][1]))
            sub_n += 1
            sub_ok += main_cell["class"] == subtype
            sub_unc += main_cell["label"] == UNCERTAIN
    res = {"dataset": dataset, "split": {"bccd": split, "smartphone_pig": split,
                                         "sigtuple": "Test_data (masked)"}.get(dataset, f"{len(smears)} drawn"),
           "mode": {None: "canonical scale (default)", True: "--tile", False: "--no-tile"}[tile],
           "um_per_px_given": um_per_px, "scale_sources": sources, "flags": flags,
           "detector": Path(detector).name, "small_window_detector": Path(small).name if small is not None else None,
           "classifier": Path(classifier).name,
           "nuclei": sc.nuclei_rule.to_dict() if sc.det is None or sc.add_nuclei else None}
    if single:
        res.update({"images": len(smears), "exactly_one_wbc_share": n_one / len(smears),
                    "ms_per_image_p50": float(np.percentile(times, 50))})
        return res
    res |= {
        "smears": len(smears), "gt_wbc": n_gt, "detected": n_pred, "true_positives": tp,
        "recall": tp / n_gt if n_gt else None, "precision": tp / n_pred if n_pred else None,
        "count_mae": float(np.mean(count_err)), "exact_count_share": float(np.mean([e == 0 for e in count_err])),
        "subtype_n": sub_n, "subtype_accuracy": sub_ok / sub_n if sub_n else None,
        "subtype_uncertain_share": sub_unc / sub_n if sub_n else None,
        "ms_per_smear_p50": float(np.percentile(times, 50)), "ms_per_smear_p90": float(np.percentile(times, 90)),
        "uncertain_below": sc.uncertain_below, "temperature": sc.temperature}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="bccd", choices=("bccd", "sigtuple", "smartphone_pig", "wbc_seg", "pbc"))
    ap.add_argument("--n", type=int, default=200,
                    help="single-cell sources: images drawn (seed 0); smartphone_pig: the first N fields")
    ap.add_argument("--um-per-px", type=float, default=None, help="give the scale instead of estimating it")
    ap.add_argument("--detector", help=f"default: the shipped {DEFAULT_DETECTOR} (the shipped cell unet with --tile)")
    ap.add_argument("--classifier", default=str(REPO / "android_assets" / "bccd4_int8.tflite"))
    ap.add_argument(
        "--tile", action=argparse.BooleanOptionalAction,
        help="expert modes: --tile (cell unet in native windows) / --no-tile (whole field resized); "
        "default: the canonical-scale pipeline of `edge-wbc count`",
    )
    ap.add_argument("--nuclei", action=argparse.BooleanOptionalAction, default=True,
                    help="with the field detector, add the stained nuclei it missed (count's default); "
                    "--no-nuclei: the model alone. --detector nuclei: the nucleus rule alone")
    ap.add_argument("--split", default="test", help="bccd / smartphone_pig split")
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = evaluate(a.dataset, a.detector, a.classifier, a.tile, a.um_per_px, a.split, a.n, a.data, a.nuclei)
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
