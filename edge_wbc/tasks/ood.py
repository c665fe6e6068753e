"""Fit what a classifier abstains with: OOD statistics of its own features (means and covariance on
train, threshold on val) and the image-quality limits of its training crops.

Used by ``edge-wbc convert`` (``--ood``: on the converted file, so int8 models are fitted on their own
int8 features; the quality limits of every field model) and by the benchmarks. The checks themselves
are :mod:`edge_wbc.runtime.ood` and :mod:`edge_wbc.runtime.quality` (NumPy only).
"""

from __future__ import annotations

import numpy as np

from ..data.containers import Dataset, Split
from ..defaults import ADAPT_MIN_IMAGES, OOD_QUANTILE, OOD_SHRINK, OOD_TRAIN_PER_SOURCE, QUALITY_PER_SOURCE
from ..runtime.classifier import TFLiteClassifier
from ..runtime.ood import OODStats, choose_threshold, fit_ood


def split_sources(split: Split) -> np.ndarray:
    """The source of each image: the '<source>:' prefix of its group (field crops), else 'all'."""
    if not split.groups:
        return np.array(["all"] * len(split))
    return np.array([g.split(":", 1)[0] if ":" in g else "all" for g in split.groups])


def _cap_per_source(split: Split, cap: int, seed: int) -> Split:
    src = split_sources(split)
    rng = np.random.default_rng(seed)
    keep = []
    for s in np.unique(src):
        idx = np.flatnonzero(src == s)
        keep.extend(sorted(rng.choice(idx, cap, replace=False)) if len(idx) > cap else idx)
    return split.take(np.asarray(sorted(keep)))


def batch_median_limit(val_scores: dict[str, np.ndarray], n: int = ADAPT_MIN_IMAGES, draws: int = 500,
                       quantile: float = 0.995, seed: int = 0) -> tuple[float, str]:
    """The largest median OOD score a batch of ``n`` cells from a training source reaches: per source,
    the ``quantile`` of the medians of ``draws`` random ``n``-cell samples of its val scores; the
    largest over sources. A larger batch median says the batch comes from another microscope."""
    rng = np.random.default_rng(seed)
    lim = {}
    for s, v in val_scores.items():
        v = np.asarray(v, np.float64)
        k = min(n, len(v))
        lim[s] = float(np.quantile([np.median(rng.choice(v, k, replace=False)) for _ in range(draws)], quantile))
    per = ", ".join(f"{s} {v:.1f}" for s, v in lim.items())
    return max(lim.values()), (f"max over training sources of the {quantile} quantile of the median score of "
                               f"{draws} random {n}-cell val samples: {per}")


def fit_quality(ds: Dataset, per_source: int = QUALITY_PER_SOURCE, seed: int = 0) -> dict:
    """The image-quality limits (``metrics.quality``) just outside every training source's train crops."""
    from ..runtime.quality import fit_limits, measures

    train = _cap_per_source(ds.split("train"), per_source, seed)
    src = split_sources(train)
    per = {s: [measures(x) for x in train.images[src == s]] for s in np.unique(src)}
    names = ", ".join(per)
    return {**fit_limits(per).to_dict(),
            "fitted_on": f"train crops of {names} (<= {per_source} per source); runtime.quality.fit_limits, margin 0.5"}


def features_of(clf: TFLiteClassifier, images: np.ndarray) -> np.ndarray:
    probs, feats = clf.predict_features(images)
    if feats is None:
        raise ValueError(f"{clf.path}: the model has no features output")
    return feats


def fit_ood_stats(clf: TFLiteClassifier, ds: Dataset, head: tuple | None = None,
                  per_source: int = OOD_TRAIN_PER_SOURCE, quantile: float = OOD_QUANTILE, shrink: float = OOD_SHRINK,
                  seed: int = 0) -> OODStats:
    """Means and whitening from ``ds``'s train split (at most ``per_source`` images a source), the
    threshold from its val split (every source's ``quantile`` answered). Test is never read.

    ``head``: the model's Dense (kernel, bias), stored with the mean of the training features, so that
    ``edge-wbc adapt --method features`` can move a microscope's features and re-apply the head."""
    if head is not None and np.shape(head[0])[-1] != clf.spec.num_classes:
        head = None  # a one-unit sigmoid head: no alignment (the OOD score still works)
    train = _cap_per_source(ds.split("train"), per_source, seed)
    f_train = features_of(clf, train.images)
    means, whiten = fit_ood(f_train, train.labels, clf.spec.num_classes, shrink)
    stats = OODStats(means, whiten, 1.0)
    val = ds.split("val")
    src = split_sources(val)
    scores = stats.score(features_of(clf, val.images))
    per_source = {s: scores[src == s] for s in np.unique(src)}
    threshold, basis = choose_threshold(per_source, quantile)
    basis["batch_median_limit"], basis["batch_median_basis"] = batch_median_limit(per_source, seed=seed)
    basis.update(fitted_on=f"{ds.name} train split ({len(train)} images, <= {per_source} a source)",
                 shrink=shrink, features="the converted model's own features output, dequantized")
    kernel, bias = (None, None) if head is None else (np.asarray(head[0], np.float64), np.asarray(head[1], np.float64))
    return OODStats(means, whiten, threshold, basis, kernel, bias,
                    None if head is None else f_train.astype(np.float64).mean(axis=0))
