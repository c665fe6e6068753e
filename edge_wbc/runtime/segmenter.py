"""TFLiteSegmenter: raw pixels in, one probability map per label out, whole-image or tiled (no TensorFlow)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import ModelError
from ..preprocess import resize_image
from .model import TFLiteModel


class TFLiteSegmenter(TFLiteModel):
    """A ``.tflite`` segmentation model: raw pixels in, one probability map per label out."""

    task_kind = "segmenter"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        shape = tuple(int(v) for v in self.output["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[1:3] != (self.spec.input_height, self.spec.input_width):
            raise ModelError(
                f"{self.path}: output shape {shape} is not (1, {self.spec.input_height}, {self.spec.input_width}, C)"
            )
        if shape[-1] != self.spec.num_classes:
            raise ModelError(
                f"{self.path}: model has {shape[-1]} outputs but model.json lists {self.spec.num_classes} labels"
            )

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
        maps = [
            np.asarray(Image.fromarray(probs[..., c]).resize(img.size, Image.Resampling.BILINEAR))
            for c in range(probs.shape[-1])
        ]
        return np.stack(maps, axis=-1)

    def predict_windows(self, a: np.ndarray, overlap: int) -> np.ndarray:
        """(H, W, 3) uint8 at the model's scale -> (H, W, C) maps: windows of the input size that overlap by
        ``overlap`` px, the image zero-padded (black, as outside an eyepiece's view) to fill the last
        ones; where windows overlap, the maps are averaged. An image no larger than the input is one
        window. This is how the field detector runs (it is trained on zero-padded crops)."""
        kh, kw = self.spec.input_height, self.spec.input_width
        h, w = a.shape[:2]

        def starts(n, k):  # as few windows as cover n with at least ``overlap`` between neighbours, evenly spread
            if n <= k:
                return [0]
            m = int(np.ceil((n - overlap) / max(1, k - overlap)))
            return [int(round(v)) for v in np.linspace(0, n - k, max(2, m))]

        pad = np.zeros((max(h, kh), max(w, kw), 3), np.uint8)
        pad[:h, :w] = a
        acc = np.zeros((*pad.shape[:2], self.spec.num_classes), np.float32)
        den = np.zeros((*pad.shape[:2], 1), np.float32)
        for y in starts(pad.shape[0], kh):
            for x in starts(pad.shape[1], kw):
                acc[y : y + kh, x : x + kw] += self.predict(pad[y : y + kh, x : x + kw][None])[0]
                den[y : y + kh, x : x + kw] += 1.0
        return (acc / den)[:h, :w]

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
