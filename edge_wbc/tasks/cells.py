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

from ..errors import ImageError
from ..preprocess import load_image
from ..runtime import TFLiteClassifier
from ..runtime.quality import QualityLimits, find_flags, image_flags
from ..runtime.rule import UNCERTAIN


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


def iter_answers(ans: CellAnswerer, paths: Iterable[Path]) -> Iterator[tuple[Path, CellAnswer | None, str | None]]:
    """Stream (path, answer | None, error | None): bad files do not stop the run."""
    for p in paths:
        try:
            yield p, ans.answer_path(p), None
        except ImageError as e:
            yield p, None, str(e)
