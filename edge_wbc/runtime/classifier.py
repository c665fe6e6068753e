"""TFLiteClassifier: raw pixels or image files in, class probabilities out (no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..errors import ImageError, ModelError
from ..preprocess import load_image, preprocess, resize_image
from .model import TFLiteModel
from .probs import class_probs
from .rule import UncertainRule, read_rule
from .wbccrop import WBCFind, canonical_crop, crop_segmenter


@dataclass(frozen=True)
class CellPrediction:
    """Probabilities of one image, and, for a ``crop: "wbc"`` model, what the WBC finder found."""

    probs: np.ndarray
    find: WBCFind | None = None
    input_size: tuple[int, int] | None = None  # (width, height) of the pixels the model's input was resized from
    pixels: np.ndarray | None = None  # the model's input (H, W, C) uint8, for quality checks


class TFLiteClassifier(TFLiteModel):
    """Load a ``.tflite`` and its model.json; ``predict(images) -> probabilities``.

    ``images`` are raw RGB uint8 arrays (N, H, W, C) at the spec's size, or file paths (they go
    through :func:`edge_wbc.preprocess.preprocess`). See :class:`TFLiteModel` for loading.
    """

    task_kind = "classifier"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self._threads = int(kw.get("num_threads", 1))
        self._segmenter = None
        from ..spec import spec_path_for

        #: the calibrated 'uncertain' rule (:mod:`edge_wbc.runtime.rule`), stored once in the model's JSON
        self.rule: UncertainRule = read_rule(spec_path_for(self.path))
        out_shape = tuple(int(v) for v in self.output["shape"])
        if len(out_shape) < 2 or out_shape[0] != 1 or min(out_shape) < 1 or any(v != 1 for v in out_shape[1:-1]):
            raise ModelError(f"{self.path}: model output shape {out_shape} is not (1, classes)")
        n_out = out_shape[-1]
        self.binary_sigmoid = n_out == 1 and self.spec.num_classes == 2
        if n_out != self.spec.num_classes and not self.binary_sigmoid:
            raise ModelError(
                f"{self.path}: model has {n_out} outputs but model.json lists {self.spec.num_classes} labels"
            )

    def _probs(self, raw: np.ndarray) -> np.ndarray:
        return class_probs(self.dequantize_output(raw), self.spec.num_classes)

    # ---- high level -----------------------------------------------------------------------------
    def predict(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """Probabilities (N, num_classes) for raw uint8 images (N, H, W, C) or image paths."""
        if not isinstance(images, np.ndarray):
            images = (
                np.stack([preprocess(p, self.spec) for p in images])
                if len(images)
                else np.zeros((0, *self.spec.input_shape), np.uint8)
            )
        if images.ndim == 3:
            images = images[None]
        if images.shape[1:] != self.spec.input_shape:
            raise ImageError(f"images have shape {images.shape[1:]}, the model wants {self.spec.input_shape}")
        out = np.empty((len(images), self.spec.num_classes), np.float32)
        for i in range(len(images)):
            out[i] = self._probs(self.invoke_one(self.quantize_input(images[i : i + 1])))[0]
        return out

    def segmenter(self):
        """The segmenter that finds the WBC of a ``crop: "wbc"`` model (loaded on first use)."""
        if self._segmenter is None:
            self._segmenter = crop_segmenter(self.spec.crop_model, self._threads)
        return self._segmenter

    def predict_image(self, img: Image.Image) -> CellPrediction:
        """One decoded image through the spec's preprocessing (the WBC-centred crop of a 'wbc' model)."""
        if self.spec.crop == "wbc":
            crop, find = canonical_crop(img, self.segmenter(), self.spec.crop_ratio)
            x = resize_image(crop, self.spec)
            return CellPrediction(self.predict(x[None])[0], find, crop.size, x)
        x = preprocess(img, self.spec)
        return CellPrediction(self.predict(x[None])[0], None, img.size, x)

    def predict_file(self, path: str | Path) -> np.ndarray:
        if self.spec.crop == "wbc":
            return self.predict_image(load_image(path)).probs
        return self.predict(preprocess(path, self.spec)[None])[0]

def iter_predictions(clf: TFLiteClassifier, paths: Iterable[Path]):
    """Stream (path, probs | None, error | None) over files: bad files do not stop the run."""
    for p in paths:
        try:
            yield p, clf.predict_file(p), None
        except ImageError as e:
            yield p, None, str(e)
