"""Classification metrics in plain NumPy (used by training, bench and the converters)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def per_class(y_true, y_pred, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """precision, recall, f1 per class (0 where undefined, as scikit-learn's zero_division=0)."""
    cm = confusion(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        rec = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return prec, rec, f1


def macro_f1(y_true, y_pred, k: int) -> float:
    """Macro-F1 over the classes present in y_true or y_pred."""
    present = np.union1d(np.unique(y_true), np.unique(y_pred)).astype(int)
    return float(per_class(y_true, y_pred, k)[2][present].mean()) if len(present) else float("nan")


def binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney U statistic (ties get half credit)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s), float)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty(len(s), float)
    r[order] = ranks
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def ovr_auc(y_true, probs: np.ndarray) -> tuple[float, list[float]]:
    """Macro one-vs-rest AUC and the per-class AUCs (NaN for absent classes)."""
    y_true = np.asarray(y_true)
    per = [binary_auc(y_true == c, probs[:, c]) for c in range(probs.shape[1])]
    valid = [a for a in per if not np.isnan(a)]
    if probs.shape[1] == 2:
        return per[1], per
    return (float(np.mean(valid)) if valid else float("nan")), per


def ece(y_true, probs: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence (equal-width bins)."""
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return float("nan")
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def classification_report(y_true, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    y_true = np.asarray(y_true)
    k = len(labels)
    y_pred = probs.argmax(1)
    prec, rec, f1 = per_class(y_true, y_pred, k)
    auc, auc_per = ovr_auc(y_true, probs)
    return {
        "n": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, k),
        "auc_ovr": auc,
        "ece": ece(y_true, probs),
        "per_class": {
            lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "auc": auc_per[i],
                  "support": int((y_true == i).sum())}
            for i, lab in enumerate(labels)
        },
        "confusion": confusion(y_true, y_pred, k).tolist(),
    }
