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

    def predict_tiled(self, img: Image.Image, window: int | None = None) -> np.ndarray:
        """PIL image -> (H, W, C) probability maps at native scale.

        Square windows of ``window`` image pixels (default: the model's input size, right for a
        model trained at its patches' native size, as the shipped one is) slide over the image with
        a stride of half a window. Each window is resized to the model's input, and the maps are blended
        with a Hann weight, so each pixel is decided mostly by windows that see it near their centre.
        This is for fields at the magnification of the training patches (e.g. SigTuple smears). A
        side shorter than the window is reflect-padded.
        """
        kh, kw = (window, window) if window else (self.spec.input_height, self.spec.input_width)
        if kh < 8:
            raise ValueError(f"tile window {kh} px: use at least 8 px")
        a = np.asarray(img.convert("RGB"))
        h, w = a.shape[:2]
        ph, pw = max(0, kh - h), max(0, kw - w)
        if ph or pw:
            a = np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
        H, W = a.shape[:2]

        def starts(n, k):
            s = list(range(0, n - k + 1, max(1, k // 2)))
            return s if s[-1] == n - k else [*s, n - k]

        weight = np.outer(np.hanning(kh + 2)[1:-1], np.hanning(kw + 2)[1:-1])[..., None]
        acc = np.zeros((H, W, self.spec.num_classes))
        den = np.zeros((H, W, 1))
        for y in starts(H, kh):
            for x in starts(W, kw):
                crop = a[y : y + kh, x : x + kw]
                if (kh, kw) == (self.spec.input_height, self.spec.input_width):
                    probs = self.predict(crop[None])[0]
                else:
                    probs = self.predict_image(Image.fromarray(crop))
                acc[y : y + kh, x : x + kw] += probs * weight
                den[y : y + kh, x : x + kw] += weight
        return (acc / den)[:h, :w].astype(np.float32)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels 1..n of a boolean map (numpy; no SciPy in the runtime).

    Each pixel holds the flat index of a pixel of its own component; a step takes the smallest index
    among its 4 neighbours, then follows the pointers (pointer jumping), so a field of a million
    pixels settles in a few dozen steps instead of one step per pixel of the longest path.
    """
    h, w = mask.shape
    mask = np.asarray(mask, bool)
    big = h * w
    lab = np.where(mask, np.arange(big).reshape(h, w), big)
    while True:
        m = lab.copy()
        m[1:, :] = np.minimum(m[1:, :], lab[:-1, :])
        m[:-1, :] = np.minimum(m[:-1, :], lab[1:, :])
        m[:, 1:] = np.minimum(m[:, 1:], lab[:, :-1])
        m[:, :-1] = np.minimum(m[:, :-1], lab[:, 1:])
        m = np.where(mask, m, big)
        flat = np.append(m.ravel(), big)
        for _ in range(4):  # a label is a pixel of the same component: take that pixel's label
            m = np.where(mask, flat[m], big)
            flat = np.append(m.ravel(), big)
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


def drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The boolean map without its 4-connected components of fewer than ``min_area`` pixels."""
    if min_area <= 0 or not mask.any():
        return mask
    lab, n = label_components(mask)
    area = np.bincount(lab.ravel(), minlength=n + 1)
    keep = area >= min_area
    keep[0] = False
    return keep[lab]


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


TILE_MODES = ("auto", "on", "off")


def use_tiles(tile: str, img: Image.Image, spec, window: int | None = None) -> bool:
    """``auto`` tiles an image more than twice the window (default: the model's input) on a side: a field, not a cell patch."""
    if tile not in TILE_MODES:
        raise ValueError(f"tile mode {tile!r}: valid choices are {', '.join(TILE_MODES)}")
    kh, kw = (window, window) if window else (spec.input_height, spec.input_width)
    return tile == "on" or (tile == "auto" and (img.width > 2 * kw or img.height > 2 * kh))


def segment_maps(seg: TFLiteSegmenter, img: Image.Image, threshold: float = 0.5, tile: str = "auto",
                 min_area_frac: float = 1 / 32, window: int | None = None) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """WBC and nucleus masks at the image's size, and whether it was tiled.

    WBC components smaller than ``min_area_frac`` of the model's input area, counted at the scale
    the model saw them (specks: platelets, debris), are dropped, and the nucleus map is kept only inside the WBC mask.
    """
    tiled = use_tiles(tile, img, seg.spec, window)
    maps = seg.predict_tiled(img, window) if tiled else seg.predict_image(img)
    labels = seg.spec.labels
    area = seg.spec.input_height * seg.spec.input_width
    # image pixels per model pixel
    scale = (window * window / area if window else 1.0) if tiled else img.width * img.height / area
    wbc = drop_small(maps[..., labels.index("wbc")] > threshold, min_area_frac * area * scale)
    nucleus = (maps[..., labels.index("nucleus")] > threshold) & wbc if "nucleus" in labels else None
    return wbc, nucleus, tiled


def segment_file(seg: TFLiteSegmenter, path: Path, out_dir: Path, threshold: float = 0.5, tile: str = "auto",
                 min_area_frac: float = 1 / 32, window: int | None = None) -> dict:
    img = load_image(path)
    wbc, nucleus, tiled = segment_maps(seg, img, threshold, tile, min_area_frac, window)
    stem = Path(path).stem
    save_png(Image.fromarray((wbc * 255).astype(np.uint8), "L"), out_dir / f"{stem}.mask.png")
    if nucleus is not None:
        save_png(Image.fromarray((nucleus * 255).astype(np.uint8), "L"), out_dir / f"{stem}.nucleus.png")
    save_png(overlay(img, wbc, nucleus), out_dir / f"{stem}.overlay.png")
    return {"file": str(path), "width": img.width, "height": img.height, "tiled": tiled, "wbc_fraction": float(wbc.mean()),
            "nucleus_fraction": float(nucleus.mean()) if nucleus is not None else None}
