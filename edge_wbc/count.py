"""Smear -> WBC differential: find WBCs with a U-Net, classify each crop, count.

Detection, two ways. By default the ``unet`` smear model (trained on BCCD smears with their VOC WBC
boxes as targets) gives a WBC probability map of the whole smear resized to its input; 4-connected
components above 0.5 become boxes, scaled to the original image. With ``tile`` (fields at the
magnification of the cell segmenter's training patches, e.g. SigTuple smears, where the BCCD
detector's cells would be a few pixels wide) the cell segmenter runs in windows at native scale
(``TFLiteSegmenter.predict_tiled``) and the components of its WBC map, less specks, become boxes. Each box is cropped as a square of side max(w, h) around its centre
(as the BCCD crops are) and classified. A crop whose calibrated confidence is below the
classifier's ``uncertain_below`` (chosen on val, stored in its model.json metrics) is reported as
``uncertain``, never forced into a class.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .errors import ImageError, ModelError
from .io import atomic_open, atomic_write_text
from .preprocess import load_image, resize_image
from .runtime import TFLiteClassifier
from .segment import SPECK_FRAC, TFLiteSegmenter, boxes_from_map, component_boxes, save_png

UNCERTAIN = "uncertain"


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scale probabilities (softmax outputs): softmax(log p / T)."""
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, 1e-4, 1.0)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def square_crop(img: Image.Image, box: list[int]) -> Image.Image:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return img.crop((left, top, left + side, top + side))  # outside the image: black padding


class SmearCounter:
    def __init__(self, detector: str | Path, classifier: str | Path, threads: int = 1, threshold: float = 0.5,
                 uncertain_below: float | None = None, tile: bool = False, window: int | None = None):
        if window is not None and not tile:
            raise ValueError(f"window {window} px applies to tiled detection only")
        self.det = TFLiteSegmenter(detector, num_threads=threads)
        if "wbc" not in self.det.spec.labels:
            raise ModelError(f"{self.det.path}: detector labels {list(self.det.spec.labels)} have no 'wbc' map")
        self.tile, self.window = tile, window
        self.clf = TFLiteClassifier(classifier, num_threads=threads)
        m = self.clf.spec.metrics or {}
        self.temperature = float(m.get("temperature", 1.0))
        self.uncertain_below = float(uncertain_below if uncertain_below is not None else m.get("uncertain_below", 0.5))
        self.threshold = threshold

    def detect(self, img: Image.Image) -> list[tuple[list[int], float]]:
        c = self.det.spec.labels.index("wbc")
        if self.tile:
            prob = self.det.predict_tiled(img, self.window)[..., c]
            kh, kw = self.det.window_shape(self.window)
            return [(box, p) for box, p, _ in component_boxes(prob > self.threshold, SPECK_FRAC * kh * kw, prob)]
        prob = self.det.predict(resize_image(img, self.det.spec)[None])[0][..., c]
        sx, sy = img.width / self.det.spec.input_width, img.height / self.det.spec.input_height
        out = []
        for (x0, y0, x1, y1), p, _ in boxes_from_map(prob, self.threshold):
            out.append(([int(round(x0 * sx)), int(round(y0 * sy)), min(img.width, int(round(x1 * sx))),
                         min(img.height, int(round(y1 * sy)))], p))
        return out

    def count_image(self, path: Path) -> dict:
        img = load_image(path)
        cells = []
        for box, det_p in self.detect(img):
            crop = resize_image(square_crop(img, box), self.clf.spec)
            p = calibrate(self.clf.predict(crop[None]), self.temperature)[0]
            k = int(p.argmax())
            label = self.clf.labels[k] if p[k] >= self.uncertain_below else UNCERTAIN
            cells.append({"box": box, "label": label, "confidence": round(float(p[k]), 4), "class": self.clf.labels[k],
                          "detection": round(det_p, 4)})
        counts: dict[str, int] = {}
        for c in cells:
            counts[c["label"]] = counts.get(c["label"], 0) + 1
        return {"file": str(path), "width": img.width, "height": img.height, "cells": cells, "counts": counts}

    def annotate(self, path: Path, result: dict, out: Path) -> None:
        img = load_image(path).copy()
        d = ImageDraw.Draw(img)
        for c in result["cells"]:
            col = (255, 160, 0) if c["label"] == UNCERTAIN else (0, 200, 255)
            d.rectangle(c["box"], outline=col, width=3)
            d.text((c["box"][0] + 4, max(0, c["box"][1] - 12)), f"{c['label']} {c['confidence']:.2f}", fill=col)
        save_png(img, out)


def summarize(images: list[dict], labels) -> dict:
    totals = {lab: 0 for lab in [*labels, UNCERTAIN]}
    for r in images:
        for k, v in r["counts"].items():
            totals[k] = totals.get(k, 0) + v
    n = sum(totals.values())
    return {"images": images, "totals": totals, "percent": {k: (100.0 * v / n if n else 0.0) for k, v in totals.items()}}


def write_outputs(report: dict, labels, json_out: Path | None, csv_out: Path | None) -> None:
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
    if csv_out:
        cols = [*labels, UNCERTAIN]
        with atomic_open(csv_out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "width", "height", "cells", *cols, "error"])
            for r in report["images"]:
                w.writerow([r["file"], r.get("width", ""), r.get("height", ""), len(r.get("cells", [])),
                            *[r.get("counts", {}).get(c, 0) for c in cols], r.get("error", "")])


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimizing the val negative log-likelihood (grid search over 0.5 .. 5).

    The lower bound keeps a small, nearly error-free val set from sharpening every confidence to 1.
    """
    grid = np.exp(np.linspace(np.log(0.5), np.log(5.0), 60))
    nll = [-np.log(calibrate(probs, t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def choose_threshold(probs: np.ndarray, y: np.ndarray, target: float = 0.95, floor: float = 0.5) -> tuple[float, float, float]:
    """Lowest confidence threshold (>= ``floor``) whose accepted val crops reach ``target`` accuracy.

    Returns (threshold, accuracy of accepted, share accepted). If no threshold reaches the target,
    the one with the best accepted accuracy among those keeping >= 50 % of crops. The floor (0.5:
    a crop is never given a class that is less likely than all others together) applies when val
    is already at the target with every crop accepted.
    """
    conf, pred = probs.max(1), probs.argmax(1)
    best = None
    for t in np.unique(np.concatenate([[floor], conf[conf > floor]])):
        keep = conf >= t
        if keep.sum() == 0:
            break
        acc, cov = float((pred[keep] == y[keep]).mean()), float(keep.mean())
        if acc >= target:
            return float(t), acc, cov
        if cov >= 0.5 and (best is None or acc > best[1]):
            best = (float(t), acc, cov)
    return best or (0.0, float((pred == y).mean()), 1.0)
