"""Calibration: temperature scaling and the 'uncertain' threshold of a classifier.

``choose_threshold`` is the one rule for both ``edge-wbc calibrate`` (candidates: the val
confidences themselves) and ``edge-wbc export-android`` (candidates: a fixed grid, 0.50 .. 0.99).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..defaults import CALIBRATE_TARGET, UNCERTAIN_FLOOR
from ..runtime.rule import apply_temperature  # noqa: F401  (re-exported: the one implementation)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimizing the val negative log-likelihood (grid search over 0.5 .. 5).

    The lower bound keeps a small, nearly error-free val set from sharpening every confidence to 1.
    """
    grid = np.exp(np.linspace(np.log(0.5), np.log(5.0), 60))
    nll = [-np.log(apply_temperature(probs, t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


@dataclass(frozen=True)
class ThresholdChoice:
    """An 'uncertain' threshold and what it does on the data it was chosen on."""

    threshold: float
    accuracy: float  # accuracy of the accepted predictions (confidence >= threshold)
    coverage: float  # share of predictions accepted
    reached: bool  # the accepted accuracy reaches the target


def choose_threshold(conf: np.ndarray, correct: np.ndarray, target: float = CALIBRATE_TARGET,
                     candidates: Sequence[float] | None = None, floor: float = UNCERTAIN_FLOOR) -> ThresholdChoice:
    """Lowest threshold whose accepted predictions (confidence >= threshold) reach ``target`` accuracy.

    ``conf`` is each prediction's confidence, ``correct`` whether it is right. ``candidates`` are the
    thresholds tried, in increasing order; by default ``floor`` and every confidence above it (the
    floor, 0.5: a prediction is never given a class that is less likely than all others together).
    If none reaches the target, the result has ``reached=False`` and holds the candidate with the best
    accepted accuracy among those keeping >= 50 % of the predictions, or, failing that, threshold 0.0
    (everything accepted).
    """
    conf, correct = np.asarray(conf), np.asarray(correct, bool)
    if candidates is None:
        candidates = np.unique(np.concatenate([[floor], conf[conf > floor]]))
    best = None
    for t in candidates:
        keep = conf >= t
        if not keep.any():
            break  # candidates increase: no later one keeps anything either
        acc, cov = float(correct[keep].mean()), float(keep.mean())
        if acc >= target:
            return ThresholdChoice(float(t), acc, cov, True)
        if cov >= 0.5 and (best is None or acc > best.accuracy):
            best = ThresholdChoice(float(t), acc, cov, False)
    return best or ThresholdChoice(0.0, float(correct.mean()) if len(correct) else float("nan"), 1.0, False)


@dataclass(frozen=True)
class CalibrationResult:
    spec_path: Path
    temperature: float
    choice: ThresholdChoice
    n: int
    target: float


def calibrate_classifier(model: str | Path, target: float = CALIBRATE_TARGET, data=None) -> CalibrationResult:
    """Fit temperature and 'uncertain' threshold of a classifier on its val split and store them as its rule.

    Only the rule's own fields change, inside whatever JSON is beside the model (a bundle keeps its
    ``format``, ``sha256``, ``labels_file`` ...), atomically: see :func:`edge_wbc.runtime.rule.write_rule`.
    """
    from ..data import load_dataset
    from ..runtime import TFLiteClassifier
    from ..runtime.rule import write_rule
    from ..spec import spec_path_for

    clf = TFLiteClassifier(model)  # a segmentation model is refused here, before any data is read
    if clf.spec.crop == "wbc":  # a field model: the WBC-centred crops of its sources
        from .cellsets import load_for_spec as load_dataset  # noqa: F811
    val = load_dataset(clf.spec.dataset, clf.spec, data=data, seed=clf.spec.split_seed).split("val")
    p = clf.predict(val.images)
    t = fit_temperature(p, val.labels)
    q = apply_temperature(p, t)
    choice = choose_threshold(q.max(1), q.argmax(1) == val.labels, target)
    sp = spec_path_for(model)
    basis = {"basis": f"edge-wbc calibrate: temperature minimizing the val NLL, then the lowest threshold >= "
                      f"{UNCERTAIN_FLOOR} at which the calibrated predictions it reports on the {clf.spec.dataset} "
                      f"val split are at least {target:.3g} accurate" + ("" if choice.reached else " (not reached)"),
             "n": len(val), "accepted_accuracy": choice.accuracy, "accepted_share": choice.coverage, "target": target}
    write_rule(sp, t, choice.threshold, basis)
    return CalibrationResult(sp, t, choice, len(val), target)
