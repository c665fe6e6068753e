"""One cell image to one answer: quality checks, the WBC finder, the model, the calibrated rule.

:class:`CellAnswerer` is what ``classify`` (and the crops of ``count``) go through. It returns the
calibrated probabilities, a prediction (a class, or ``uncertain``) and the flags that explain an
abstention: image-quality flags (:mod:`edge_wbc.runtime.quality`, limits from the model's JSON
``metrics.quality``), the WBC finder's (``no_wbc``, ``not_a_single_cell``) and ``low_confidence``
(the model's one uncertain rule, :mod:`edge_wbc.runtime.rule`) and ``ood`` (the Mahalanobis distance
of the model's features to its training classes, :mod:`edge_wbc.runtime.ood`, when the model has them).
Any flag makes the prediction ``uncertain``; the probabilities stay as they are. ``abstain=False``
gives the raw argmax and no flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from ..defaults import DETECTOR_UM_PER_PX
from ..errors import ImageError
from ..preprocess import load_image
from ..runtime import TFLiteClassifier
from ..runtime.nuclei import detect_nuclei
from ..runtime.quality import QualityLimits, find_flags, image_flags
from ..runtime.rule import UNCERTAIN
from .fieldsets import resample
from .scale import estimate_scale


@dataclass
class CellAnswer:
    prediction: str
    confidence: float
    probs: np.ndarray  # calibrated
    flags: list[str] = field(default_factory=list)
    wbc_box: tuple | None = None
    ood_score: float | None = None  # the Mahalanobis distance of the cell's features (None without OOD stats)


class CellAnswerer:
    def __init__(self, clf: TFLiteClassifier, abstain: bool = True, rule=None):
        self.clf, self.abstain = clf, abstain
        self.rule = rule or clf.rule
        self.limits = QualityLimits.from_dict((clf.spec.metrics or {}).get("quality"))

    def answer_image(self, img: Image.Image) -> CellAnswer:
        spec = self.clf.spec
        pred = self.clf.predict_image(img)
        raw, find, x, side = pred.probs, pred.find, pred.pixels, min(pred.input_size)
        if not self.abstain:
            k = int(raw.argmax())
            return CellAnswer(self.clf.labels[k], float(raw[k]), raw, [], find.box if find else None)
        label, conf, q = self.rule.label(raw, self.clf.labels)
        flags = find_flags(find, img.size, self.limits) + image_flags(x, side, spec.input_height, self.limits)
        if find is not None and find.found and not flags and min(img.size) >= self.limits.field_min_side:
            share = nucleus_share(img)
            if share is not None and share < self.limits.min_field_nucleus_share:
                flags.append("not_a_single_cell")
        score = None
        if self.clf.ood is not None and pred.features is not None:
            score = float(self.clf.ood.score(pred.features))
            if score > self.clf.ood.threshold:
                flags.append("ood")
        if label == UNCERTAIN:
            flags.append("low_confidence")
        return CellAnswer(UNCERTAIN if flags else label, conf, q, flags, find.box if find and find.found else None,
                          score)

    def answer_path(self, path: str | Path) -> CellAnswer:
        return self.answer_image(load_image(path))


def nucleus_share(img: Image.Image) -> float | None:
    """The side of the image's largest stained nucleus over its shorter side, at the red-cell scale
    (:mod:`edge_wbc.runtime.nuclei` on the image resampled to the field detector's scale), or None
    without a red-cell estimate (most single-cell crops) or a nucleus. A smear field is many nuclei wide."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    est = estimate_scale(img)
    if not est.ok:
        return None
    s = est.um_per_px / DETECTOR_UM_PER_PX
    found = detect_nuclei(np.asarray(resample(img, s)))
    if not found:
        return None
    return max(max(x1 - x0, y1 - y0) for (x0, y0, x1, y1), _ in found) / s / min(img.size)


def iter_answers(ans: CellAnswerer, paths: Iterable[Path]) -> Iterator[tuple[Path, CellAnswer | None, str | None]]:
    """Stream (path, answer | None, error | None): bad files do not stop the run."""
    for p in paths:
        try:
            yield p, ans.answer_path(p), None
        except ImageError as e:
            yield p, None, str(e)
