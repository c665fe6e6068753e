"""Out-of-distribution score of a classifier's penultimate features: a Mahalanobis distance (NumPy only).

A classifier converted with a features output (``edge-wbc convert ... --ood``) returns, beside its
probabilities, the vector ``f`` its last Dense layer reads (the global-average-pooled features). The
model's JSON stores, under ``metrics.ood``:

- ``means``: the class means ``mu_c`` of the training crops' features (C x D);
- ``whiten``: a D x D matrix ``W`` with ``W W^T = S^-1``, the inverse of the class-tied covariance
  ``S`` of those features (shrunk towards its diagonal mean, see :func:`fit_ood`);
- ``threshold``: the largest distance still answered.

The score of an input is ``d(f) = min_c || (f - mu_c) W ||^2``, the squared Mahalanobis distance to
the nearest class mean (Lee et al. 2018, with one tied covariance). ``d > threshold`` gives the flag
``ood``. The threshold is chosen on the val split of the training sources (:func:`choose_threshold`),
and the features are those of the converted model itself (int8 features, dequantized), so the same
arithmetic on a phone reproduces the decision: see ``android_assets/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError

KIND = "mahalanobis"
SHIFT_KINDS = ("mean", "em")  # how `edge-wbc adapt --method features` estimates the feature shift
RULE_TEXT = ("d = min over classes c of || (f - means[c]) @ whiten ||^2, f the dequantized features output; "
             "flag 'ood' when d > threshold")


@dataclass(frozen=True)
class OODStats:
    means: np.ndarray  # (C, D)
    whiten: np.ndarray  # (D, D)
    threshold: float
    basis: dict | None = None
    #: the Dense head (D, C) and (C,) and the training features' mean (D,): what feature alignment needs
    head_kernel: np.ndarray | None = None
    head_bias: np.ndarray | None = None
    source_mean: np.ndarray | None = None
    #: set by ``edge-wbc adapt --method features``: added to every features vector before the head and
    #: the score (the training mean minus the mean of the user's unlabelled cells)
    shift: np.ndarray | None = None
    adapted: dict | None = None

    def align(self, features: np.ndarray) -> np.ndarray:
        """Features moved by the adaptation shift (unchanged when the model is not adapted)."""
        return features if self.shift is None else np.asarray(features, np.float32) + self.shift.astype(np.float32)

    def head_probs(self, features: np.ndarray) -> np.ndarray:
        """softmax(features @ kernel + bias): the model's own head, in NumPy (for aligned features)."""
        z = np.atleast_2d(np.asarray(features, np.float64)) @ self.head_kernel + self.head_bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def estimate_shift(self, features: np.ndarray, kind: str = "em", iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The feature shift of a set of unlabelled cells from one microscope. Returns (shift, pi).

        ``kind="mean"``: the cells' mean onto the training features' mean (``source_mean``). Right when
        the cells are a natural mix like the training sources'; a batch of one class is pulled towards
        the others. ``kind="em"``: onto the training class means mixed in the batch's own class
        proportions ``pi``, estimated by EM (Saerens et al. 2002): ``shift = pi @ means - mean(f)``,
        ``pi = mean(head_probs(f + shift))``, ``iters`` times from ``pi`` of the unshifted cells;
        robust to the class mix, but it keeps the biased ``pi`` of a strongly shifted microscope.
        ``pi`` is the class mix after the shift.
        """
        if kind not in SHIFT_KINDS:
            raise ValueError(f"shift kind {kind!r}: valid kinds are {', '.join(SHIFT_KINDS)}")
        f = np.asarray(features, np.float64)
        mean_t = f.mean(axis=0)
        if kind == "mean":
            shift = self.source_mean - mean_t
            return shift, self.head_probs(f + shift).mean(axis=0).astype(np.float64)
        pi = self.head_probs(f).mean(axis=0).astype(np.float64)
        shift = pi @ self.means - mean_t
        for _ in range(iters):
            pi = self.head_probs(f + shift).mean(axis=0).astype(np.float64)
            shift = pi @ self.means - mean_t
        return shift, pi

    def batch_note(self, scores, min_cells: int, model_name: str | None = None) -> str | None:
        """A note when the median OOD score of a run's cells exceeds what a batch of training-source
        cells reaches (``basis.batch_median_limit``, fitted on val), else None."""
        limit = (self.basis or {}).get("batch_median_limit")
        if limit is None or len(scores) < min_cells:
            return None
        med = float(np.median(scores))
        if med <= limit:
            return None
        model = model_name or "MODEL"
        if self.shift is not None:
            return (f"these {len(scores)} cells still look unlike the training sources after this bundle's "
                    f"adaptation (median OOD distance {med:.1f}, above {limit:.1f}): answers are less reliable; "
                    "adapt on more cells of this microscope, a natural mix of every WBC of whole smears")
        return (f"these {len(scores)} cells look unlike the training sources (median OOD distance {med:.1f}, "
                f"above {limit:.1f} for cells from them): another microscope or stain; answers are less "
                f"reliable. Adapt the model to it: edge-wbc adapt {model} --images CELLS/ --out DIR --method features")

    def with_shift(self, shift: np.ndarray, adapted: dict) -> OODStats:
        from dataclasses import replace

        return replace(self, shift=np.asarray(shift, np.float64), adapted=adapted)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean, for features (D,) or (N, D)."""
        f = np.asarray(features, np.float64)
        one = f.ndim == 1
        f = np.atleast_2d(f)
        if f.shape[1] != self.dim:
            raise ModelError(f"features have {f.shape[1]} values but the OOD statistics have {self.dim}")
        z = (f[:, None, :] - self.means[None]) @ self.whiten  # (N, C, D)
        d = np.einsum("ncd,ncd->nc", z, z).min(axis=1)
        return d[0] if one else d

    def is_ood(self, features: np.ndarray) -> np.ndarray:
        """``score > threshold`` for features already :meth:`align`-ed."""
        return self.score(features) > self.threshold

    def to_dict(self) -> dict:
        return {
            "kind": KIND, "dim": self.dim, "classes": int(self.means.shape[0]), "threshold": float(self.threshold),
            "rule": RULE_TEXT,
            "means": np.round(self.means, 6).tolist(), "whiten": np.round(self.whiten, 6).tolist(),
            **({"basis": self.basis} if self.basis else {}),
            **({} if self.head_kernel is None else {"head": {
                "kernel": np.round(self.head_kernel, 7).tolist(), "bias": np.round(self.head_bias, 7).tolist(),
                "source_mean": np.round(self.source_mean, 6).tolist()}}),
            **({} if self.shift is None else {"shift": np.round(self.shift, 6).tolist(), "adapted": self.adapted}),
        }

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "") -> OODStats | None:
        """The stats stored in a JSON dict (``metrics.ood``), or None when there are none."""
        if not d:
            return None
        at = f"{where}: " if where else ""
        if d.get("kind") != KIND:
            raise ModelError(f"{at}OOD statistics of kind {d.get('kind')!r}: the only kind is {KIND!r}")
        try:
            means = np.asarray(d["means"], np.float64)
            whiten = np.asarray(d["whiten"], np.float64)
            threshold = float(d["threshold"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{at}OOD statistics need means, whiten and threshold ({e})") from None
        if means.ndim != 2 or whiten.shape != (means.shape[1], means.shape[1]):
            raise ModelError(f"{at}OOD statistics: means {means.shape} and whiten {whiten.shape} do not fit "
                             "(want (C, D) and (D, D))")
        if not np.isfinite(threshold) or threshold <= 0:
            raise ModelError(f"{at}OOD threshold {threshold} is not a positive number")
        c, dim = means.shape
        head, kernel, bias, mean, shift = d.get("head"), None, None, None, None
        if head:
            kernel, bias = np.asarray(head["kernel"], np.float64), np.asarray(head["bias"], np.float64)
            mean = np.asarray(head["source_mean"], np.float64)
            if kernel.shape != (dim, c) or bias.shape != (c,) or mean.shape != (dim,):
                raise ModelError(f"{at}OOD head kernel {kernel.shape}, bias {bias.shape}, source_mean {mean.shape} "
                                 f"do not fit {c} classes x {dim} features")
        if d.get("shift") is not None:
            shift = np.asarray(d["shift"], np.float64)
            if shift.shape != (dim,) or kernel is None:
                raise ModelError(f"{at}OOD shift {shift.shape} needs the head and {dim} values")
        return cls(means, whiten, threshold, d.get("basis"), kernel, bias, mean, shift, d.get("adapted"))

    def check(self, n_features: int, n_classes: int, where: str = "") -> None:
        """The stats must fit the model: one mean per class, and the features output's width."""
        at = f"{where}: " if where else ""
        if self.means.shape != (n_classes, n_features):
            raise ModelError(f"{at}OOD statistics are for {self.means.shape[0]} classes x {self.dim} features, "
                             f"the model has {n_classes} classes x {n_features} features")


def fit_ood(features: np.ndarray, labels: np.ndarray, n_classes: int,
            shrink: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the whitening matrix of the class-tied covariance of training features.

    The covariance is shrunk towards ``mean(diag(S)) * I`` by ``shrink`` (a small, fixed amount: the
    features of a ReLU network have directions with almost no variance, whose inverse would be noise).
    """
    f = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or len(f) != len(y):
        raise ValueError(f"features {f.shape} and labels {y.shape} do not match")
    missing = [c for c in range(n_classes) if not np.any(y == c)]
    if missing:
        raise ValueError(f"no training features for classes {missing}")
    means = np.stack([f[y == c].mean(axis=0) for c in range(n_classes)])
    centred = f - means[y]
    cov = centred.T @ centred / max(len(f) - n_classes, 1)
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    # W W^T = S^-1: from the eigen-decomposition S = V diag(l) V^T, W = V diag(l^-1/2)
    vals, vecs = np.linalg.eigh(cov)
    whiten = vecs / np.sqrt(np.maximum(vals, 1e-12))
    return means, whiten


def choose_threshold(val_scores: dict[str, np.ndarray], quantile: float = 0.99) -> tuple[float, dict]:
    """The threshold that answers ``quantile`` of every training source's val crops.

    The largest per-source ``quantile`` of the val scores, so that no training source has more than
    1 - ``quantile`` of its own val images flagged. Returns the threshold and the per-source basis.
    """
    if not val_scores or any(len(v) == 0 for v in val_scores.values()):
        raise ValueError("every source needs val scores to choose an OOD threshold")
    per = {s: float(np.quantile(np.asarray(v, np.float64), quantile)) for s, v in val_scores.items()}
    t = max(per.values())
    basis = {"quantile": quantile, "split": "val", "per_source_quantile": per,
             "val_flagged": {s: float(np.mean(np.asarray(v) > t)) for s, v in val_scores.items()},
             "val_n": {s: int(len(v)) for s, v in val_scores.items()}}
    return t, basis
