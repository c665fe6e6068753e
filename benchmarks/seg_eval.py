"""Dice / IoU of a segmentation model on the held-out (test) splits, Keras float vs TFLite.

Per source dataset (wbc_seg: WBC and nucleus; SigTuple: WBC) on the fixed test split that training
used (edge_wbc.segdata, seed 0), for model.keras and each .tflite in the run dir: mean Dice and IoU
per image, and a 95 % bootstrap interval of the mean Dice (2,000 resamples of the images). Where the
training masks of a source lie on a coarser annotation grid (SigTuple: 4 px, i.e. drawn at 32 x 32),
it also scores at that grid (``dice_grid``, ``iou_grid``, ``dice_grid_ci95``; see
edge_wbc.segdata.label_grid); the pixel scores stay the headline.

    EDGE_WBC_DATA=../shared/data python benchmarks/seg_eval.py runs/unet_seg [--dataset seg] [--split val] \
        [--grid K] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from edge_wbc.data.segdata import load_seg_dataset
from edge_wbc.metrics.segmentation import label_grids, seg_report
from edge_wbc.runtime import TFLiteSegmenter
from edge_wbc.spec import ModelSpec


def ci95(per_image):
    """Percentile bootstrap over images: how far the mean Dice of this few images can move."""
    d = np.array(per_image)
    boot = d[np.random.default_rng(0).integers(0, len(d), (2000, len(d)))].mean(axis=1)
    return [round(float(v), 4) for v in np.percentile(boot, [2.5, 97.5])]


def scores(pred, target, groups, labels, dataset, grids):
    """Per label and source dataset (single-source datasets have no groups: named after the dataset)."""
    out = {}
    for key, r in seg_report(pred, target, labels, groups or [dataset] * len(pred), digits=None, grids=grids).items():
        if key.endswith("/all"):
            continue
        out[key] = {
            "dice": round(r["dice"], 4),
            "iou": round(r["iou"], 4),
            "n": r["n"],
            "dice_ci95": ci95(r["dice_per_image"]),
        }
        if "grid" in r:
            out[key] |= {"grid": r["grid"], "dice_grid": round(r["dice_grid"], 4), "iou_grid": round(r["iou_grid"], 4),
                         "dice_grid_ci95": ci95(r["dice_grid_per_image"])}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--json")
    ap.add_argument(
        "--grid",
        type=int,
        help="score every label and source at this grid instead of the one read off the "
        "training masks (a control: on pixel-level masks a coarser grid should not help)",
    )
    ap.add_argument(
        "--dataset", help="seg dataset (default: model.json's), e.g. seg for a model fine-tuned on sigtuple"
    )
    ap.add_argument(
        "--split",
        default="test",
        choices=("test", "val", "train"),
        help="held-out split (choose models on val); train: how well the model fits its own training images",
    )
    a = ap.parse_args()
    d = Path(a.run_dir)
    spec = ModelSpec.load(d)
    name = a.dataset or spec.dataset
    seed = spec.split_seed if name == spec.dataset else 0  # as edge-wbc bench does
    ds = load_seg_dataset(name, spec, seed=seed)
    te = ds.split(a.split)
    tr = ds.split("train")
    grids = label_grids(
        dataclasses.replace(tr, groups=tr.groups or [name] * len(tr)), spec.labels
    )  # read off training masks only
    if a.grid:
        groups = sorted(set(te.groups or [name]))
        grids = {f"{lab}/{g}": a.grid for lab in spec.labels for g in groups}
    res = {"dataset": name, "split": a.split, "split_seed": seed, "label_grids": grids}
    if (d / "model.keras").is_file():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        m = keras.saving.load_model(d / "model.keras", safe_mode=True, compile=False)
        res["keras"] = scores(
            m.predict(te.images.astype(np.float32), batch_size=16, verbose=0),
            te.labels,
            te.groups,
            spec.labels,
            name,
            grids,
        )
    for f in sorted(d.glob("*.tflite")):
        res[f.name] = scores(TFLiteSegmenter(f).predict(te.images), te.labels, te.groups, spec.labels, name, grids)
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
