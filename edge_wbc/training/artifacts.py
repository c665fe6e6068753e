"""What a training run leaves in its output directory, written the same way by both trainers, atomically.

``model.keras`` (re-saved without the optimizer state), ``model.json``, ``metrics.json``,
``history.csv``, ``curves.png`` and, for classifiers, ``confusion.png``. Each file is written to a
temp file beside it and renamed into place (:mod:`edge_wbc.fileio`): a reader or an interrupted run
sees the old file or the whole new one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from ..fileio import atomic_open, atomic_write_text, save_figure
from ..spec import ModelSpec


def save_keras(model, path: Path) -> Path:
    """``model.save`` to a hidden ``.keras`` temp file beside ``path``, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def history_csv(history: dict) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    keys = list(history)
    w.writerow(["epoch", *keys])
    for i in range(len(history["loss"])):
        w.writerow([i + 1, *[f"{history[k][i]:.6f}" for k in keys]])
    return buf.getvalue()


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "accuracy") if history.get(k)]  # segmentation runs have no accuracy
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot(history[key], label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label=f"val {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, labels, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                int(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
                fontsize=8,
            )
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def save_artifacts(out: Path, model, spec: ModelSpec, metrics: dict, history: dict, confusion=None) -> None:
    """Write a finished run: model.keras, model.json, metrics.json, history.csv, curves.png (+ confusion.png)."""
    out = Path(out)
    save_keras(model, out / "model.keras")
    spec.save(out / "model.json")
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    with atomic_open(out / "history.csv", "w", newline="") as fh:
        fh.write(history_csv(history))
    plot_curves(history, out / "curves.png")
    if confusion is not None:
        plot_confusion(np.asarray(confusion), spec.labels, out / "confusion.png")
