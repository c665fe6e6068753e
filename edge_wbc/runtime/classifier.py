"""TFLiteClassifier: raw pixels or image files in, class probabilities out (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ImageError, ModelError
from ..preprocess import preprocess
from .model import TFLiteModel
from .probs import class_probs


class TFLiteClassifier(TFLiteModel):
    """Load a ``.tflite`` and its model.json; ``predict(images) -> probabilities``.

    ``images`` are raw RGB uint8 arrays (N, H, W, C) at the spec's size, or file paths (they go
    through :func:`edge_wbc.preprocess.preprocess`). See :class:`TFLiteModel` for loading.
    """

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
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

    def predict_file(self, path: str | Path) -> np.ndarray:
        return self.predict(preprocess(path, self.spec)[None])[0]




def iter_predictions(clf: TFLiteClassifier, paths: Iterable[Path]):
    """Stream (path, probs | None, error | None) over files: bad files do not stop the run."""
    for p in paths:
        try:
            yield p, clf.predict_file(p), None
        except ImageError as e:
            yield p, None, str(e)
