"""`edge-wbc segment` with no mode flag (each image at the segmenter's training scale) vs the expert modes.

Scored at each image's own size, as `segment` writes its masks, WBC Dice per image, mean:

- wbc_seg test split (60 single-cell images, the split the shipped model was scored on: seed 0, 20 %),
  WBC = mask >= 64 (cytoplasm or nucleus);
- the 13 masked SigTuple test fields (``sigtuple/Test_data``; JPEG masks thresholded at 128), the whole field.

    EDGE_WBC_DATA=../shared/data python benchmarks/segment_scale_eval.py [--model android_assets/wbc_unet_int8.tflite] \
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edge_wbc.data import data_root
from edge_wbc.data.segdata import _split_ids, sigtuple_test_fields
from edge_wbc.preprocess import load_image
from edge_wbc.runtime import TFLiteSegmenter
from edge_wbc.tasks.segment import segment_maps, segment_scaled

REPO = Path(__file__).resolve().parents[1]


def dice(p: np.ndarray, t: np.ndarray) -> float:
    s = p.sum() + t.sum()
    return float(2 * (p & t).sum() / s) if s else 1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "android_assets" / "wbc_unet_int8.tflite"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    root = data_root(a.data)
    seg = TFLiteSegmenter(a.model, num_threads=1)
    d = root / "wbc_seg" / "dataset1"
    ids = [p.stem for p in d.glob("*.bmp") if (d / f"{p.stem}.png").is_file()]
    sets = {
        "wbc_seg_test": [(d / f"{n}.bmp", np.asarray(Image.open(d / f"{n}.png").convert("L")) >= 64)
                         for n in _split_ids(ids, 0)["test"]],
        "sigtuple_test_fields": [(i, np.asarray(Image.open(m).convert("L")) >= 128)
                                 for i, m in sigtuple_test_fields(root)],
    }
    res = {"model": Path(a.model).name}
    for name, items in sets.items():
        rows = {"default": [], "tile": [], "no_tile": []}
        ms, src, flags = [], {}, {}
        for path, truth in items:
            img = load_image(path)
            t0 = time.perf_counter()
            wbc, _, fs = segment_scaled(seg, img)
            ms.append((time.perf_counter() - t0) * 1e3)
            src[fs.source] = src.get(fs.source, 0) + 1
            for f in fs.flags:
                flags[f] = flags.get(f, 0) + 1
            rows["default"].append(dice(wbc, truth))
            rows["tile"].append(dice(segment_maps(seg, img, tile=True)[0], truth))
            rows["no_tile"].append(dice(segment_maps(seg, img, tile=False)[0], truth))
        res[name] = {"images": len(items), "scale_sources": src, "flags": flags,
                     **{f"dice_{k}": round(float(np.mean(v)), 4) for k, v in rows.items()},
                     "default_ms_p50": round(float(np.percentile(ms, 50)), 1)}
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
