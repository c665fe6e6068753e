"""Dice of a cell segmenter on the official SigTuple test images (``sigtuple/Test_data``), never used in training.

The 13 masked test images are smear crops (318-1316 px wide) at the magnification of the 128 px
training patches. The protocol mirrors how those patches were made (a WBC in the centre): for every
annotated component of WBC size (>= --min-area px; one mask also outlines red cells, 1,400 px and
smaller, which are not WBCs), take the 128 px window centred on it (shifted to stay inside the image),
segment the window, and score it against the mask in that window, pixel by pixel (these masks are
pixel-level, unlike the training patches' 4 px grid). The rules were fixed before the first run.

    EDGE_WBC_DATA=../shared/data python benchmarks/sigtuple_test_eval.py android_assets/wbc_unet_int8.tflite [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from edge_wbc.data import data_root
from edge_wbc.preprocess import load_image
from edge_wbc.segdata import dice_iou
from edge_wbc.segment import TFLiteSegmenter, label_components


def windows(mask: np.ndarray, size: tuple[int, int], min_area: int):
    """(y0, x0, area) of the window of ``size`` (h, w) centred on each component of at least ``min_area`` px."""
    lab, n = label_components(mask)
    h, w = size
    out = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(lab == k)
        if len(ys) < min_area:
            continue
        y0 = int(np.clip(round(ys.mean()) - h // 2, 0, mask.shape[0] - h))
        x0 = int(np.clip(round(xs.mean()) - w // 2, 0, mask.shape[1] - w))
        out.append((y0, x0, len(ys)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path, help=".tflite segmenters (model.json beside each)")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--min-area", type=int, default=2000, help="smallest annotated component that counts as a WBC (px)")
    ap.add_argument("--json")
    a = ap.parse_args()
    d = data_root(a.data) / "sigtuple" / "Test_data"
    pairs = sorted((p, p.with_name(f"{p.stem}-mask.jpg")) for p in d.glob("*.jpg") if not p.stem.endswith("-mask"))
    pairs = [(i, m) for i, m in pairs if m.is_file()]
    res = {"images": len(pairs), "min_area": a.min_area}
    for f in a.models:
        seg = TFLiteSegmenter(f)
        hw = (seg.spec.input_height, seg.spec.input_width)
        c = seg.spec.labels.index("wbc")
        rows = []
        for img_path, mask_path in pairs:
            img = np.asarray(load_image(img_path))
            mask = np.asarray(Image.open(mask_path).convert("L")) >= 128  # JPEG mask: threshold at 128
            if mask.shape != img.shape[:2]:
                raise SystemExit(f"{mask_path}: mask {mask.shape} does not match image {img.shape[:2]}")
            for y0, x0, area in windows(mask, hw, a.min_area):
                crop = img[y0 : y0 + hw[0], x0 : x0 + hw[1]]
                prob = seg.predict(crop[None])[0, ..., c]
                dice, iou = dice_iou(prob[None], mask[None, y0 : y0 + hw[0], x0 : x0 + hw[1]].astype(float))
                rows.append({"image": img_path.name, "window": [x0, y0], "area": area, "dice": round(float(dice[0]), 4), "iou": round(float(iou[0]), 4)})
        dice = np.array([r["dice"] for r in rows])
        boot = dice[np.random.default_rng(0).integers(0, len(dice), (2000, len(dice)))].mean(axis=1)
        res[f.name] = {"n": len(rows), "dice": round(float(dice.mean()), 4), "iou": round(float(np.mean([r["iou"] for r in rows])), 4),
                       "dice_median": round(float(np.median(dice)), 4), "dice_ci95": [round(float(v), 4) for v in np.percentile(boot, [2.5, 97.5])],
                       "windows": rows}
        print(f"{f}: {len(rows)} WBC windows in {len(pairs)} images, Dice {dice.mean():.4f} (median {np.median(dice):.4f}, "
              f"95 % interval {res[f.name]['dice_ci95']}), IoU {res[f.name]['iou']:.4f}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
