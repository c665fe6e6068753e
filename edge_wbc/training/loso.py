"""Leave-one-source-out (LOSO) evaluation of the field classifier, with site adaptation.

For each source S of ``sources``: train on the others (:func:`edge_wbc.training.field.train_field`
with ``holdout=S``; the epoch is chosen on the other sources' val splits), convert to int8
(calibrated on the training sources' train crops), and test on *all* of S, float and int8. The
abstention rule (temperature and 'uncertain' threshold, :mod:`edge_wbc.tasks.calibrate`) is fitted on
the training sources' val crops, never on S. Then the adaptation gains on S: AdaBN on S's train split
(labels unused) and few-shot head fine-tuning on 10/25/50 labelled cells of S's train split, each
tested on S's test split.

Every figure is written to ``loso.json`` and ``loso.md`` in ``out``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.cells import VOCAB
from ..defaults import CALIBRATE_TARGET
from ..fileio import atomic_write_text
from ..metrics.classification import ece, per_class
from ..runtime.rule import apply_temperature
from .field import FieldHParams, train_field

SHOTS = (10, 25, 50)


def summarize(probs: np.ndarray, y: np.ndarray, temperature: float = 1.0, threshold: float = 0.0) -> dict:
    """Top-1, macro-F1 and recall over the classes present in ``y``, ECE, and the abstention figures:
    coverage (share answered) and answered-wrong (share of all cells given a wrong class)."""
    y = np.asarray(y)
    p = apply_temperature(np.asarray(probs, np.float64), temperature)
    pred, conf = p.argmax(1), p.max(1)
    present = sorted(set(y.tolist()))
    _, rec_all, f1_all = per_class(y, pred, len(VOCAB))
    rec = {VOCAB[c]: float(rec_all[c]) for c in present}
    f1 = [f1_all[c] for c in present]
    answered = conf >= threshold
    return {
        "n": int(len(y)),
        "top1": float((pred == y).mean()) if len(y) else float("nan"),
        "macro_f1": float(np.mean(f1)) if f1 else float("nan"),
        "recall": rec,
        "ece": float(ece(y, p)),
        "coverage": float(answered.mean()),
        "answered_wrong": float((answered & (pred != y)).mean()),
        "answered_accuracy": float((pred[answered] == y[answered]).mean()) if answered.any() else float("nan"),
    }


def _tflite_probs(path: Path, x: np.ndarray) -> np.ndarray:
    from ..runtime import TFLiteClassifier

    return TFLiteClassifier(path, num_threads=2).predict(x)


def convert_int8(run_dir: Path, cc, mask_train, mask_val, size, log=print, name: str = "int8") -> Path:
    """int8 .tflite of ``run_dir/model.keras``, calibrated on crops of ``mask_train``, checked on ``mask_val``."""
    from ..converters import convert_model_dir
    from ..tasks.cellsets import crops_dataset

    rng = np.random.default_rng(0)  # a sample is enough: 300 calibration crops, 200 agreement crops
    keep = np.zeros_like(mask_train)
    for m, n in ((mask_train, 600), (mask_val, 300)):
        keep[rng.permutation(np.flatnonzero(m))[:n]] = True
    ds = crops_dataset(cc, size, "cells", mask=keep)
    convert_model_dir(run_dir, "int8", override=ds, calib=300, log=log, out_name=name)
    return run_dir / f"{name}.tflite"


def run_loso(sources, out: str | Path, base: FieldHParams | None = None, data=None, log=print,
             shots=SHOTS, target: float = CALIBRATE_TARGET, reuse: bool = True) -> dict:
    """LOSO over ``sources``; returns (and writes) the per-source figures."""
    import keras

    from ..tasks.calibrate import choose_threshold, fit_temperature
    from ..tasks.cellsets import load_cell_crops, to_model_size
    from .adapt import adabn, finetune_head, pick_shots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = base or FieldHParams(sources=tuple(sources))
    base = replace(base, sources=tuple(sources))
    cc = load_cell_crops(base.sources, data, base.seed, base.crop_ratio, base.crop_model, base.label_map or None)
    src, split, y = cc.src, cc.split, cc.y
    size = (base.size, base.size)
    result: dict = {"sources": list(sources), "hparams": {k: v for k, v in vars(base).items()}, "target": target,
                    "folds": {}}
    for s in sources:
        t0 = time.time()
        hp = replace(base, holdout=s)
        run = out / f"holdout_{s}"
        log(f"== {s} held out: training on {', '.join(hp.train_sources)}")
        if reuse and (run / "model.keras").is_file() and (run / "metrics.json").is_file():
            log(f"reusing the trained run {run} (delete it to retrain)")
        else:
            train_field(hp, run, data=data, log=log, crops=cc)
        from ..keras_objects import custom_objects
        model = keras.saving.load_model(run / "model.keras", compile=False, custom_objects=custom_objects())
        train_m = np.isin(src, hp.train_sources) & (split == "train")
        val_m = np.isin(src, hp.train_sources) & (split == "val")
        tfl = convert_int8(run, cc, train_m, val_m, size, log=log)
        # the abstention rule, from the training sources' val crops (float model)
        xv = to_model_size(cc.x[val_m], size)
        pv = model.predict(xv, batch_size=256, verbose=0)
        temp = fit_temperature(pv, y[val_m])
        pvt = apply_temperature(pv, temp)
        choice = choose_threshold(pvt.max(1), pvt.argmax(1) == y[val_m], target)
        hm = src == s
        xh = to_model_size(cc.x[hm], size)
        fold = {
            "train_sources": list(hp.train_sources),
            "temperature": temp,
            "threshold": choice.threshold,
            "threshold_reached_on_val": choice.reached,
            "val_answered_accuracy": choice.accuracy,
            "val_coverage": choice.coverage,
            "float": summarize(model.predict(xh, batch_size=256, verbose=0), y[hm], temp, choice.threshold),
            "int8": summarize(_tflite_probs(tfl, xh), y[hm], temp, choice.threshold),
            "in_source_test": {
                t: summarize(
                    model.predict(to_model_size(cc.x[(src == t) & (split == "test")], size), batch_size=256,
                                  verbose=0),
                    y[(src == t) & (split == "test")],
                )["top1"]
                for t in hp.train_sources
            },
        }
        # the held-out source's own splits (float, no rule): val is where a design is chosen, test reported
        fold["held_out_splits"] = {
            sp: summarize(model.predict(to_model_size(cc.x[hm & (split == sp)], size), batch_size=256, verbose=0),
                          y[hm & (split == sp)])["top1"]
            for sp in ("val", "test") if (hm & (split == sp)).any()
        }
        # adaptation on the held-out source: its train split (unlabelled or a few labels) -> its test split
        tr, te = hm & (split == "train"), hm & (split == "test")
        xt, yt = to_model_size(cc.x[te], size), y[te]
        xa = to_model_size(cc.x[tr], size)
        fold["adapt"] = {"test_n": int(te.sum()), "before": summarize(model.predict(xt, verbose=0), yt)["top1"]}
        ad = adabn(model, xa)
        fold["adapt"]["adabn"] = summarize(ad.predict(xt, verbose=0), yt)["top1"]
        fold["adapt"]["few_shot"] = {}
        for k in shots:
            idx = pick_shots(y[tr], k, seed=base.seed)
            ft = finetune_head(ad, xa[idx], y[tr][idx], seed=base.seed)
            fold["adapt"]["few_shot"][str(k)] = summarize(ft.predict(xt, verbose=0), yt)["top1"]
        fold["seconds"] = time.time() - t0
        result["folds"][s] = fold
        log(f"{s}: float top-1 {fold['float']['top1']:.3f}, int8 {fold['int8']['top1']:.3f}, answered-wrong "
            f"{fold['int8']['answered_wrong']:.3f} at coverage {fold['int8']['coverage']:.3f}; AdaBN "
            f"{fold['adapt']['before']:.3f} -> {fold['adapt']['adabn']:.3f}")
        _write(out, result)
    f = result["folds"]
    result["mean_int8_top1"] = float(np.mean([f[s]["int8"]["top1"] for s in f]))
    _write(out, result)
    return result


def markdown(result: dict) -> str:
    rows = [
        "| held out | trained on | n | float top-1 | int8 top-1 | int8 macro-F1 | ECE | coverage | answered-wrong "
        "| AdaBN (test) | 10 / 25 / 50 shots (test) | per-class recall (int8) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, f in result["folds"].items():
        q = f["int8"]
        a = f["adapt"]
        shots = " / ".join(f"{a['few_shot'][k]:.3f}" for k in a["few_shot"])
        rec = ", ".join(f"{k[:4]} {v:.2f}" for k, v in q["recall"].items())
        rows.append(
            f"| {s} | {' + '.join(f['train_sources'])} | {q['n']} | {f['float']['top1']:.3f} | {q['top1']:.3f} | "
            f"{q['macro_f1']:.3f} | {q['ece']:.3f} | {q['coverage']:.3f} | {q['answered_wrong']:.3f} | "
            f"{a['before']:.3f} → {a['adabn']:.3f} | {shots} | {rec} |"
        )
    return "\n".join(rows) + "\n"


def _write(out: Path, result: dict) -> None:
    atomic_write_text(out / "loso.json", json.dumps(result, indent=2, default=str) + "\n")
    if result["folds"]:
        atomic_write_text(out / "loso.md", markdown(result))
