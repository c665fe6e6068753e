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
from .ood import OODStats
from .probs import class_probs
from .rule import UncertainRule, read_rule
from .wbccrop import WBCFind, canonical_crop, crop_around, crop_segmenter


@dataclass(frozen=True)
class CellPrediction:
    """Probabilities of one image, and, for a ``crop: "wbc"`` model, what the WBC finder found."""

    probs: np.ndarray
    find: WBCFind | None = None
    input_size: tuple[int, int] | None = None  # (width, height) of the pixels the model's input was resized from
    pixels: np.ndarray | None = None  # the model's input (H, W, C) uint8, for quality checks
    features: np.ndarray | None = None  # the dequantized features output (D,), when the model has one


class TFLiteClassifier(TFLiteModel):
    """Load a ``.tflite`` and its model.json; ``predict(images) -> probabilities``.

    ``images`` are raw RGB uint8 arrays (N, H, W, C) at the spec's size, or file paths (they go
    through :func:`edge_wbc.preprocess.preprocess`). See :class:`TFLiteModel` for loading.
    """

    task_kind = "classifier"
    max_outputs = 2  # probabilities, and optionally the penultimate features (for the OOD score)

    def _main_output(self, outs: list[dict], spec) -> dict:
        """The probabilities: the output whose width is the number of classes (1 for a sigmoid)."""
        if len(outs) == 1:
            return outs[0]
        widths = [int(o["shape"][-1]) for o in outs]
        probs = [o for o, w in zip(outs, widths) if w == spec.num_classes or (w == 1 and spec.num_classes == 2)]
        if len(probs) != 1:
            raise ModelError(f"{self.path}: outputs of widths {widths}: exactly one must have the "
                             f"{spec.num_classes} classes of model.json")
        return probs[0]

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
        #: the features output (penultimate layer) and the OOD statistics of metrics.ood, when both exist
        self.features_output = self.extra_outputs[0] if self.extra_outputs else None
        self.ood = OODStats.from_dict((self.spec.metrics or {}).get("ood"), self.path.name)
        if self.ood is not None:
            if self.features_output is None:
                raise ModelError(f"{self.path}: model.json has OOD statistics but the model has no features output")
            self.ood.check(int(self.features_output["shape"][-1]), self.spec.num_classes, self.path.name)

    def ood_off_reason(self) -> str | None:
        """Why this model has no OOD check (None when it has one), for a one-time note."""
        if self.ood is not None:
            return None
        if self.features_output is None:
            return "the model has no features output (convert it with --ood)"
        return "its JSON has no OOD statistics (metrics.ood; convert it with --ood)"

    def _features(self) -> np.ndarray | None:
        """The features of the last invoke, dequantized (None without a features output)."""
        o = self.features_output
        if o is None:
            return None
        return self.dequantize_output(self.interpreter.get_tensor(o["index"]).reshape(-1), o)

    def predict_features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, C) and features (N, D) of raw uint8 images (N, H, W, C); features None if absent.

        For an adapted bundle both are the adapted ones (features shifted, probabilities from the head)."""
        if images.ndim == 3:
            images = images[None]
        probs = np.empty((len(images), self.spec.num_classes), np.float32)
        feats = None if self.features_output is None else np.empty(
            (len(images), int(self.features_output["shape"][-1])), np.float32)
        for i in range(len(images)):
            probs[i] = self._probs(self.invoke_one(self.quantize_input(images[i : i + 1])))[0]
            if feats is not None:
                feats[i] = self._features()
        if self.adapted:  # the user's microscope: shifted features through the head
            feats = self.ood.align(feats)
            probs = self.ood.head_probs(feats)
        return probs, feats

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
        if self.adapted:
            return self.predict_features(images)[0]
        out = np.empty((len(images), self.spec.num_classes), np.float32)
        for i in range(len(images)):
            out[i] = self._probs(self.invoke_one(self.quantize_input(images[i : i + 1])))[0]
        return out

    @property
    def adapted(self) -> bool:
        """True for a bundle adapted by ``edge-wbc adapt --method features``: probabilities come from the
        model's head applied in NumPy to the shifted features (:meth:`OODStats.align`)."""
        return self.ood is not None and self.ood.shift is not None

    def segmenter(self):
        """The segmenter that finds the WBC of a ``crop: "wbc"`` model (loaded on first use)."""
        if self._segmenter is None:
            self._segmenter = crop_segmenter(self.spec.crop_model, self._threads)
        return self._segmenter

    def predict_image(self, img: Image.Image, box: tuple[float, float, float, float] | None = None) -> CellPrediction:
        """One decoded image through the spec's preprocessing (the WBC-centred crop of a 'wbc' model).

        ``box`` (image pixels): where the WBC is, found by the caller (a large image's stained nucleus,
        :func:`edge_wbc.tasks.cells.locate_wbc`); the crop is cut around it instead of around the
        segmenter's find."""
        if self.spec.crop == "wbc" and box is not None:
            crop = crop_around(img, box, self.spec.crop_ratio)
            area = (box[2] - box[0]) * (box[3] - box[1]) / float(img.width * img.height)
            x, size, find = resize_image(crop, self.spec), crop.size, WBCFind(True, tuple(box), area, 1, float("nan"))
        elif self.spec.crop == "wbc":
            crop, find = canonical_crop(img, self.segmenter(), self.spec.crop_ratio)
            x, size = resize_image(crop, self.spec), crop.size
        else:
            x, find, size = preprocess(img, self.spec), None, img.size
        if x.shape != self.spec.input_shape:
            raise ImageError(f"image has shape {x.shape}, the model wants {self.spec.input_shape}")
        probs, feats = self.predict_features(x[None])
        return CellPrediction(probs[0], find, size, x, None if feats is None else feats[0])

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
