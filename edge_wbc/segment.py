"""Segmentation runtime: TFLiteSegmenter, mask files, connected components and boxes (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ModelError
from .io import atomic_open
from .preprocess import load_image, resize_image
from .runtime import TFLiteClassifier

# WBC components smaller than this share of the model's window (at the model's scale) are specks:
# platelets, debris. The smallest SigTuple training WBC is 1,536 px of 16,384 (about 1/11).
SPECK_FRAC = 1 / 32


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

    def window_shape(self, window: int | None = None) -> tuple[int, int]:
        """(height, width) in image pixels of a tile: ``window`` x ``window``, or the model's input."""
        return (window, window) if window else (self.spec.input_height, self.spec.input_width)

    def predict_tiled(self, img: Image.Image, window: int | None = None) -> np.ndarray:
        """PIL image -> (H, W, C) probability maps at native scale, for smear fields at the
        magnification of the training patches (e.g. SigTuple fields for the shipped cell model).

        Square windows of ``window`` image pixels (default: the model's input size, right for a
        model trained at its patches' native size, as the shipped one is) slide over the image with a
        stride of half a window; each is resized to the model's input where that differs. The maps are
        blended with a Hann weight, so each pixel is decided mostly by windows that see it near their
        centre. The image is first reflect-padded by half a window on every side, so border pixels
        get central windows too.
        """
        kh, kw = self.window_shape(window)
        if kh < 8 or kw < 8:
            raise ValueError(f"tile window {min(kh, kw)} px: use at least 8 px")
        a = np.asarray(img.convert("RGB"))
        h, w = a.shape[:2]
        py, px = kh // 2, kw // 2
        pad = ((py, py + max(0, kh - h - 2 * py)), (px, px + max(0, kw - w - 2 * px)), (0, 0))
        # reflect needs a side longer than the pad; tiny images repeat their edge instead
        a = np.pad(a, pad, mode="reflect" if min(h, w) > max(py, px) + 1 else "edge")
        H, W = a.shape[:2]

        def starts(n, k):
            s = list(range(0, n - k + 1, max(1, k // 2)))
            return s if s[-1] == n - k else [*s, n - k]

        weight = np.outer(np.hanning(kh + 2)[1:-1], np.hanning(kw + 2)[1:-1]).astype(np.float32)[..., None]
        acc = np.zeros((H, W, self.spec.num_classes), np.float32)
        den = np.zeros((H, W, 1), np.float32)
        for y in starts(H, kh):
            for x in starts(W, kw):
                acc[y : y + kh, x : x + kw] += self.predict_image(Image.fromarray(a[y : y + kh, x : x + kw])) * weight
                den[y : y + kh, x : x + kw] += weight
        return (acc / den)[py : py + h, px : px + w]


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels 1..n of a boolean map, numbered in raster order of each component's first pixel.

    Union-find in numpy (no SciPy in the runtime). Every pixel starts as its own root. Each round
    hooks the larger root of every edge whose two ends have different roots onto the smaller one,
    then compresses every path by pointer jumping. A few rounds settle any shape, spirals included.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    idx_t = np.int32 if h * w < 2**31 else np.int64
    parent = np.arange(h * w, dtype=idx_t)
    pix = np.arange(h * w, dtype=idx_t).reshape(h, w)
    right, down = pix[:, :-1][mask[:, :-1] & mask[:, 1:]], pix[:-1, :][mask[:-1, :] & mask[1:, :]]  # edges' first ends
    a, b = np.concatenate([right, down]), np.concatenate([right + 1, down + w])
    while True:
        ra, rb = parent[a], parent[b]
        diff = ra != rb
        if not diff.any():
            break
        a, b, ra, rb = a[diff], b[diff], ra[diff], rb[diff]  # edges already inside one tree stay there
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every pixel points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots = parent.reshape(h, w)[mask]
    ids = np.unique(roots)  # sorted roots = each component's first pixel in raster order
    out = np.zeros((h, w), np.int32)
    out[mask] = np.searchsorted(ids, roots) + 1
    return out, len(ids)


def drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The boolean map without its 4-connected components of fewer than ``min_area`` pixels."""
    if min_area <= 0 or not mask.any():
        return mask
    lab, n = label_components(mask)
    area = np.bincount(lab.ravel(), minlength=n + 1)
    keep = area >= min_area
    keep[0] = False
    return keep[lab]


def component_boxes(mask: np.ndarray, min_area: float = 0, prob: np.ndarray | None = None) -> list[tuple[list[int], float, int]]:
    """Boxes [x0, y0, x1, y1] (exclusive max), mean of ``prob`` (1.0 without one) and area of each
    4-connected component of ``mask`` with at least ``min_area`` pixels."""
    lab, n = label_components(mask)
    out = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(lab == k)
        if len(ys) < min_area:
            continue
        mean = float(prob[ys, xs].mean()) if prob is not None else 1.0
        out.append(([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], mean, len(ys)))
    return out


def boxes_from_map(prob: np.ndarray, threshold: float = 0.5, min_area_frac: float = 0.002) -> list[tuple[list[int], float, int]]:
    """``component_boxes`` of the map above ``threshold``, less components under ``min_area_frac`` of the map."""
    return component_boxes(prob > threshold, min_area_frac * prob.size, prob)


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


def segment_maps(seg: TFLiteSegmenter, img: Image.Image, threshold: float = 0.5, tile: bool = False,
                 min_area_frac: float = SPECK_FRAC, window: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """WBC and nucleus masks at the image's size: the whole image resized to the model's input, or
    with ``tile`` windows at native scale (``predict_tiled``).

    WBC components smaller than ``min_area_frac`` of the model's input area, counted at the scale
    the model saw them (specks: platelets, debris), are dropped, and the nucleus map is kept only inside the WBC mask.
    """
    if window is not None and not tile:
        raise ValueError(f"window {window} px applies to tiling only: tile the image, or leave the window out")
    img = img if img.mode == "RGB" else img.convert("RGB")
    maps = seg.predict_tiled(img, window) if tile else seg.predict_image(img)
    labels = seg.spec.labels
    # the floor in image pixels: a share of the tile, or of the whole image when it was resized
    kh, kw = seg.window_shape(window) if tile else (img.height, img.width)
    wbc = drop_small(maps[..., labels.index("wbc")] > threshold, min_area_frac * kh * kw)
    nucleus = (maps[..., labels.index("nucleus")] > threshold) & wbc if "nucleus" in labels else None
    return wbc, nucleus


def segment_file(seg: TFLiteSegmenter, path: Path, out_dir: Path, threshold: float = 0.5, tile: bool = False,
                 min_area_frac: float = SPECK_FRAC, window: int | None = None) -> dict:
    img = load_image(path)
    wbc, nucleus = segment_maps(seg, img, threshold, tile, min_area_frac, window)
    stem = Path(path).stem
    save_png(Image.fromarray((wbc * 255).astype(np.uint8), "L"), out_dir / f"{stem}.mask.png")
    if nucleus is not None:
        save_png(Image.fromarray((nucleus * 255).astype(np.uint8), "L"), out_dir / f"{stem}.nucleus.png")
    save_png(overlay(img, wbc, nucleus), out_dir / f"{stem}.overlay.png")
    return {"file": str(path), "width": img.width, "height": img.height, "tiled": tile, "wbc_fraction": float(wbc.mean()),
            "nucleus_fraction": float(nucleus.mean()) if nucleus is not None else None}
