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
from ..runtime.classifier import CellPrediction
from ..runtime.quality import QualityLimits, find_flags, image_flags, wide_view
from ..runtime.rule import UNCERTAIN
from .fieldsets import detect_nuclei_at
from .scale import ScaleEstimate, estimate_scale


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
        pred, flags = find_cell(self.clf, img, self.limits)
        raw, find, x, side = pred.probs, pred.find, pred.pixels, min(pred.input_size)
        if not self.abstain:
            k = int(raw.argmax())
            return CellAnswer(self.clf.labels[k], float(raw[k]), raw, [], find.box if find else None)
        label, conf, q = self.rule.label(raw, self.clf.labels)
        flags += image_flags(x, side, spec.input_height, self.limits)
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


def find_cell(clf: TFLiteClassifier, img: Image.Image, limits: QualityLimits) -> tuple[CellPrediction, list[str]]:
    """``img`` through ``clf`` as ``classify`` takes it (a large image cut at its stained nucleus), and the
    finder's flags (:func:`finder_flags`): what ``classify`` and ``adapt`` both start from."""
    est = large_image_scale(clf, img, limits)
    loc = locate_wbc(img, est) if est is not None else None
    pred = clf.predict_image(img, box=loc.box if loc is not None else None)
    return pred, finder_flags(img.size, est, loc, pred.find, limits)


def finder_flags(size: tuple[int, int], est: ScaleEstimate | None, loc: NucleusLocate | None, find,
                 limits: QualityLimits) -> list[str]:
    """``no_wbc`` / ``not_a_single_cell`` of an image of ``size`` (w, h): a large image's nucleus (``loc``: a
    small one for the image, or several WBC-sized ones, is a smear field), else the segmenter's ``find``;
    and a large image whose red cells (``est``) say it is a wide view is a field too."""
    if loc is not None:
        flags = ["not_a_single_cell"] if loc.share < limits.min_field_nucleus_share or loc.wbc_sized >= 2 else []
    else:
        flags = find_flags(find, size, limits)
    if est is not None and est.ok and "not_a_single_cell" not in flags and wide_view(
            min(size) * est.um_per_px, est.red_cells, limits):
        flags = [f for f in flags if f != "no_wbc"] + ["not_a_single_cell"]
    return flags


@dataclass(frozen=True)
class NucleusLocate:
    """A large image's WBC, found by its stained nucleus at the red-cell scale (:func:`locate_wbc`)."""

    box: tuple[float, float, float, float]  # the largest nucleus, image pixels
    share: float  # its longer side / the image's shorter side
    wbc_sized: int  # nuclei at least half as large as it (a field holds several WBCs)


def large_image_scale(clf: TFLiteClassifier, img: Image.Image, limits: QualityLimits) -> ScaleEstimate | None:
    """The red-cell scale of ``img`` when a WBC-centred crop model is given a large image (at least
    ``limits.field_min_side`` px); None for a smaller image or another kind of model."""
    if clf.spec.crop != "wbc" or min(img.size) < limits.field_min_side:
        return None
    return estimate_scale(img if img.mode == "RGB" else img.convert("RGB"))


def locate_wbc(img: Image.Image, est: ScaleEstimate | None = None) -> NucleusLocate | None:
    """The largest stained nucleus of ``img`` (:mod:`edge_wbc.runtime.nuclei` on the image resampled to the
    field detector's scale with its red-cell estimate ``est``, measured here when not given), or None without
    a red-cell estimate (most single-cell crops) or a nucleus. In a large image the WBC segmenter's find is
    coarse (it sees the image squeezed to its input); this is where the crop of a large image is cut."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    est = estimate_scale(img) if est is None else est
    if not est.ok:
        return None
    found = detect_nuclei_at(img, est.um_per_px / DETECTOR_UM_PER_PX)
    if not found:
        return None
    sides = [max(x1 - x0, y1 - y0) for (x0, y0, x1, y1), _ in found]
    k = int(np.argmax(sides))
    return NucleusLocate(found[k][0], sides[k] / min(img.size), sum(v >= 0.5 * sides[k] for v in sides))


def iter_answers(ans: CellAnswerer, paths: Iterable[Path]) -> Iterator[tuple[Path, CellAnswer | None, str | None]]:
    """Stream (path, answer | None, error | None): bad files do not stop the run."""
    for p in paths:
        try:
            yield p, ans.answer_path(p), None
        except ImageError as e:
            yield p, None, str(e)
