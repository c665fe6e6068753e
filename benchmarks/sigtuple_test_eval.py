"""Dice of a cell segmenter on the official SigTuple test images (``sigtuple/Test_data``), never used in training.

The 13 masked test images are smear crops (335-1316 px wide) at the magnification of the 128 px
training patches. The protocol mirrors how those patches were made (a WBC in the centre). For every
annotated component at least as large as the smallest WBC mask of the SigTuple training split
(1,536 px; one test mask also outlines red cells, 1,400 px and smaller), take the 128 px window centred on it
(shifted to stay inside the image), segment the window (resized to the model's input if that differs),
and score it against the mask in that window, pixel by pixel. These masks are pixel-level, unlike the
training patches' 4 px grid.

It also scores whole images as `edge-wbc segment` writes them (``full_image``): ``tiled`` is
``--tile`` (128 px windows at native scale, speck filter on), ``resized`` is ``--min-area-frac 0``
(the field resized to the model's input, unfiltered: what `edge-wbc segment` did before tiling).
Whole-image Dice also counts any WBC that the mask leaves out, and the red cells that one mask outlines.

    EDGE_WBC_DATA=../shared/data python benchmarks/sigtuple_test_eval.py android_assets/wbc_unet_int8.tflite \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edge_wbc.data import data_root
from edge_wbc.data.segdata import sigtuple_min_wbc_area, sigtuple_test_fields
from edge_wbc.metrics.segmentation import dice_iou
from edge_wbc.preprocess import load_image
from edge_wbc.runtime import TFLiteSegmenter
from edge_wbc.tasks.segment import label_components, segment_maps

PATCH = 128  # SigTuple's training patches: 128 px at the test images' magnification


def windows(mask: np.ndarray, size: int, min_area: int):
    """(y0, x0, area) of the ``size`` px window centred on each component of at least ``min_area`` px."""
    if mask.shape[0] < size or mask.shape[1] < size:
        raise ValueError(f"a {mask.shape[1]}x{mask.shape[0]} mask is smaller than the {size} px window")
    lab, n = label_components(mask)
    flat = lab.ravel()
    area = np.bincount(flat, minlength=n + 1)
    ys, xs = np.indices(mask.shape)
    cy, cx = (np.bincount(flat, v.ravel(), minlength=n + 1) / np.maximum(area, 1) for v in (ys, xs))  # centroids
    return [
        (
            int(np.clip(round(cy[k]) - size // 2, 0, mask.shape[0] - size)),
            int(np.clip(round(cx[k]) - size // 2, 0, mask.shape[1] - size)),
            int(area[k]),
        )
        for k in range(1, n + 1)
        if area[k] >= min_area
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path, help=".tflite segmenters (model.json beside each)")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--min-area", type=int, help="smallest annotated component that counts as a WBC (px; default: the "
                    "smallest WBC mask of the SigTuple training split)")
    ap.add_argument("--json")
    a = ap.parse_args()
    root = data_root(a.data)
    pairs = sigtuple_test_fields(root)
    min_area = a.min_area if a.min_area is not None else sigtuple_min_wbc_area(root)
    res = {"images": len(pairs), "window": PATCH, "min_area": min_area}
    for f in a.models:
        seg = TFLiteSegmenter(f)
        c = seg.spec.labels.index("wbc")
        rows, full, ms = [], {"tiled": [], "resized": []}, []
        for img_path, mask_path in pairs:
            pil = load_image(img_path)
            img = np.asarray(pil)
            mask = np.asarray(Image.open(mask_path).convert("L")) >= 128  # JPEG mask: threshold at 128
            if mask.shape != img.shape[:2]:
                raise SystemExit(f"{mask_path}: mask {mask.shape} does not match image {img.shape[:2]}")
            for y0, x0, area in windows(mask, PATCH, min_area):
                prob = seg.predict_image(Image.fromarray(img[y0 : y0 + PATCH, x0 : x0 + PATCH]))[..., c]
                dice, iou = dice_iou(prob[None], mask[None, y0 : y0 + PATCH, x0 : x0 + PATCH].astype(float))
                rows.append(
                    {
                        "image": img_path.name,
                        "window": [x0, y0],
                        "area": area,
                        "dice": round(float(dice[0]), 4),
                        "iou": round(float(iou[0]), 4),
                    }
                )
            for mode, kw in (
                ("tiled", {"tile": True, "window": PATCH}),
                ("resized", {"tile": False, "min_area_frac": 0.0}),
            ):
                t0 = time.perf_counter()
                wbc = segment_maps(seg, pil, **kw)[0]
                if mode == "tiled":
                    ms.append((time.perf_counter() - t0) * 1e3)
                full[mode].append(round(float(dice_iou(wbc[None].astype(float), mask[None].astype(float))[0][0]), 4))
        dice = np.array([r["dice"] for r in rows])
        boot = dice[np.random.default_rng(0).integers(0, len(dice), (2000, len(dice)))].mean(axis=1)
        res[f.name] = {
            "n": len(rows),
            "dice": round(float(dice.mean()), 4),
            "iou": round(float(np.mean([r["iou"] for r in rows])), 4),
            "dice_median": round(float(np.median(dice)), 4),
            "dice_ci95": [round(float(v), 4) for v in np.percentile(boot, [2.5, 97.5])],
            "windows": rows,
            "full_image": {
                m: {"dice": round(float(np.mean(v)), 4), "per_image": dict(zip((i.name for i, _ in pairs), v))}
                for m, v in full.items()
            },
            # image to masks at 1 thread, per field (335-1316 px wide); the first call includes warm-up
            "tiled_ms_per_field": dict(zip((i.name for i, _ in pairs), (round(v, 1) for v in ms))),
        }
        print(
            f"{f}: {len(rows)} WBC windows in {len(pairs)} images, Dice {dice.mean():.4f} (median "
            f"{np.median(dice):.4f}, "
            f"95 % interval {res[f.name]['dice_ci95']}), IoU {res[f.name]['iou']:.4f}; whole images: Dice "
            f"{res[f.name]['full_image']['tiled']['dice']:.4f} tiled, "
            f"{res[f.name]['full_image']['resized']['dice']:.4f} resized"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
