"""Stratified k-fold cross-validation of a classifier on a folder tree (``edge-wbc cv``).

For a dataset without a patient id or an official split (ALL-IDB2: lymphoblast vs normal), every
image is tested exactly once: fold ``i`` of a seeded stratified ``folds``-fold split
(:func:`edge_wbc.data.loaders.stratified_kfold`) is the test split, a stratified slice of the other
folds is val (it picks the checkpoint and stops early; the test fold is never looked at), the rest is
train. Each fold is an ordinary training run (:func:`edge_wbc.training.train.train`) in
``out/fold<i>``; ``cv.json`` and ``cv.md`` in ``out`` hold each fold's test accuracy, AUC and
sensitivity (recall of the ``positive`` class) and their mean ± sd over the folds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..data.loaders import folder_classes
from ..errors import DataError, SpecError
from ..fileio import atomic_write_text
from .train import HParams, make_spec, train

MEASURES = ("accuracy", "auc", "sensitivity", "specificity", "val_accuracy")


def positive_class(labels: tuple[str, ...], positive: str | None) -> str | None:
    """The class whose recall is the sensitivity: ``positive``, or the second class of two (the one a
    sigmoid scores); None for more than two classes without ``positive``."""
    if positive is None:
        return labels[1] if len(labels) == 2 else None
    if positive not in labels:
        raise SpecError(f"invalid positive class {positive!r}: valid choices are {', '.join(labels)}")
    return positive


def fold_row(m: dict, positive: str | None) -> dict:
    """One fold's figures from its training metrics."""
    pc = m["per_class"]
    row = {"n_test": m["n"], "accuracy": m["accuracy"], "auc": m["auc_ovr"], "val_accuracy": m["val_accuracy"],
           "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"], "train_seconds": m["train_seconds"]}
    if positive is not None:
        row["sensitivity"] = pc[positive]["recall"]
        others = [c for c in pc if c != positive]
        if len(others) == 1:
            row["specificity"] = pc[others[0]]["recall"]
    return row


def summarize(rows: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof 1) over the folds of each measure."""
    out = {}
    for k in MEASURES:
        v = np.array([r[k] for r in rows if k in r], float)
        if len(v):
            out[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def markdown(report: dict) -> str:
    cols = [k for k in ("accuracy", "auc", "sensitivity", "specificity", "val_accuracy") if k in report["summary"]]
    head = ["fold", "n test", *cols, "best epoch", "train s"]
    lines = [f"{report['model']} on {report['dataset_name']}, stratified {report['folds']}-fold CV "
             f"(seed {report['seed']}, {report['size']} px, positive class: {report['positive']})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["per_fold"]:
        lines.append("| " + " | ".join([str(r["fold"]), str(r["n_test"]), *(f"{r[c]:.4f}" for c in cols),
                                        str(r["best_epoch"]), f"{r['train_seconds']:.0f}"]) + " |")
    s = report["summary"]
    lines.append("| mean ± sd | " + str(sum(r["n_test"] for r in report["per_fold"])) + " | "
                 + " | ".join(f"{s[c]['mean']:.4f} ± {s[c]['sd']:.4f}" for c in cols)
                 + f" | | {report['wall_seconds']:.0f} (wall) |")
    return "\n".join(lines) + "\n"


def run_cv(hp: HParams, out: str | Path, folds: int = 5, positive: str | None = None, data=None,
           log=print, verbose: int = 0) -> dict:
    """Train ``hp`` once per fold into ``out/fold<i>``; write ``out/cv.json`` and ``out/cv.md``; return the report."""
    root = Path(hp.dataset).expanduser()
    if not root.is_dir():
        raise DataError(f"--dataset {hp.dataset}: cross-validation needs a folder of <class>/ image folders")
    labels = folder_classes(root)
    if len(labels) < 2:
        raise DataError(f"{root}: expected at least 2 class folders, found {list(labels)}")
    pos = positive_class(labels, positive)
    if folds < 2:
        raise SpecError(f"invalid folds {folds}: must be >= 2")
    replace(hp, folds=folds, fold=0)  # validate the options before any training
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = []
    for i in range(folds):
        log(f"fold {i + 1}/{folds}")
        m = train(replace(hp, folds=folds, fold=i), out / f"fold{i}", data=data, verbose=verbose, log=log)
        rows.append({"fold": i, **fold_row(m, pos)})
    report = {
        "model": hp.model, "dataset": str(root), "dataset_name": root.name, "labels": list(labels),
        "positive": pos, "folds": folds, "seed": hp.seed, "size": make_spec(hp, labels).input_height,
        "protocol": "stratified k-fold; test = fold i, val = a stratified 15 % of the other folds (checkpoint "
                    "and early stopping), train = the rest; sd is the sample sd over folds (ddof 1)",
        "hparams": {k: v for k, v in asdict(hp).items() if k not in ("folds", "fold", "dataset")},
        "per_fold": rows, "summary": summarize(rows), "n": int(sum(r["n_test"] for r in rows)),
        "wall_seconds": round(time.time() - t0, 1),
    }
    atomic_write_text(out / "cv.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "cv.md", markdown(report))
    return report
