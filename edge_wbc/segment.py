"""Segmentation runtime: TFLiteSegmenter, mask files, connected components and boxes (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ModelError
from .io import atomic_open
from .preprocess import load_image, resize_image
from .runtime import TFLiteClassifier


class TFLiteSegmenter(TFLiteClassifier):
    """A ``.tflite`` segmentation model: raw pixels in, one probability map per label out."""

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        if self.spec.task != "segmentation":
            raise ModelError(f"{self.path}: model.json task is {self.spec.task!r}, not 'segmentation'")
        shape = tuple(int(v) for v in self.output["shape"])
        if len(shape) != 4 or shape[1:3] != (self.spec.input_height, self.spec.input_width):
            raise ModelError(f"{self.path}: output shape {shape} is not (1, {self.spec.input_height}, {self.spec.input_width}, C)")

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W, C) float probabilities."""
        if images.ndim == 3:
            images = images[None]
        out = np.empty((len(images), self.spec.input_height, self.spec.input_width, self.spec.num_classes), np.float32)
        for i in range(len(images)):
            out[i] = self.dequantize_output(self.invoke_one(self.quantize_input(images[i : i + 1])))[0]
        return out

    def predict_image(self, img: Image.Image) -> np.ndarray:
        """PIL image -> (H, W, C) probability maps at the image's own size (bilinear upsampling)."""
        probs = self.predict(resize_image(img, self.spec)[None])[0]
        maps = [np.asarray(Image.fromarray(probs[..., c]).resize(img.size, Image.Resampling.BILINEAR)) for c in range(probs.shape[-1])]
        return np.stack(maps, axis=-1)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels of a boolean map (numpy min-propagation; small maps only)."""
    h, w = mask.shape
    big = h * w + 1
    lab = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), big)
    while True:
        m = lab.copy()
        m[1:, :] = np.minimum(m[1:, :], lab[:-1, :])
        m[:-1, :] = np.minimum(m[:-1, :], lab[1:, :])
        m[:, 1:] = np.minimum(m[:, 1:], lab[:, :-1])
        m[:, :-1] = np.minimum(m[:, :-1], lab[:, 1:])
        m = np.where(mask, m, big)
        if np.array_equal(m, lab):
            break
        lab = m
    ids = np.unique(lab[mask])
    out = np.zeros((h, w), np.int32)
    if len(ids):
        remap = np.zeros(big + 1, np.int32)
        remap[ids] = np.arange(1, len(ids) + 1)
        out[mask] = remap[lab[mask]]
    return out, len(ids)


def boxes_from_map(prob: np.ndarray, threshold: float = 0.5, min_area_frac: float = 0.002) -> list[tuple[list[int], float, int]]:
    """Boxes [x0, y0, x1, y1] (exclusive max), mean probability and area of each component."""
    mask = prob > threshold
    lab, n = label_components(mask)
    out = []
    min_area = min_area_frac * mask.size
    for k in range(1, n + 1):
        ys, xs = np.nonzero(lab == k)
        if len(ys) < min_area:
            continue
        out.append(([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], float(prob[ys, xs].mean()), len(ys)))
    return out


def overlay(img: Image.Image, wbc: np.ndarray, nucleus: np.ndarray | None) -> Image.Image:
    a = np.asarray(img.convert("RGB"), np.float32)
    col = a.copy()
    col[wbc] = 0.55 * col[wbc] + 0.45 * np.array([0, 200, 255], np.float32)
    if nucleus is not None:
        col[nucleus] = 0.45 * col[nucleus] + 0.55 * np.array([255, 0, 160], np.float32)
    return Image.fromarray(col.clip(0, 255).astype(np.uint8))


def save_png(img: Image.Image, path: Path) -> None:
    with atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG")


def segment_file(seg: TFLiteSegmenter, path: Path, out_dir: Path, threshold: float = 0.5) -> dict:
    img = load_image(path)
    maps = seg.predict_image(img)
    labels = seg.spec.labels
    wbc = maps[..., labels.index("wbc")] > threshold
    nucleus = maps[..., labels.index("nucleus")] > threshold if "nucleus" in labels else None
    stem = Path(path).stem
    save_png(Image.fromarray((wbc * 255).astype(np.uint8), "L"), out_dir / f"{stem}.mask.png")
    if nucleus is not None:
        save_png(Image.fromarray((nucleus * 255).astype(np.uint8), "L"), out_dir / f"{stem}.nucleus.png")
    save_png(overlay(img, wbc, nucleus), out_dir / f"{stem}.overlay.png")
    return {"file": str(path), "width": img.width, "height": img.height, "wbc_fraction": float(wbc.mean()),
            "nucleus_fraction": float(nucleus.mean()) if nucleus is not None else None}
