"""OOD statistics under leave-one-source-out: does the Mahalanobis score of a fold's features flag the
source it never saw, and what is left answered?

For each fold of ``edge-wbc loso`` (``RUNS/holdout_<source>/model.keras``, trained on the other sources):
the float (Keras) penultimate features of every crop; class means and tied covariance on the training
sources' train split, the threshold on their val split (each training source answers 99 %), exactly as
``edge-wbc convert --ood`` fits a shipped model. Reported on test splits only: the held-out source's
flagged share, AUROC (held-out test vs in-source test), and coverage / answered-wrong / answered
accuracy under the fold's own confidence rule (``loso.json``), the OOD flag, and both; and a
risk-coverage curve of the combined rule as the OOD quantile moves (the val-chosen point is 0.99).

    python benchmarks/ood_loso.py --runs runs/loso --json docs/results/ood_loso.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_wbc.defaults import ADAPT_MIN_IMAGES, OOD_QUANTILE, OOD_SHRINK, OOD_TRAIN_PER_SOURCE
from edge_wbc.metrics.classification import binary_auc
from edge_wbc.runtime.ood import OODStats, choose_threshold, fit_ood
from edge_wbc.runtime.rule import apply_temperature
from edge_wbc.tasks.cellsets import load_cell_crops, to_model_size
from edge_wbc.tasks.ood import batch_median_limit

QUANTILES = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


def fold_features(run: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    import keras

    from edge_wbc.converters.pipeline import load_keras, with_features

    base = load_keras(run)
    head = [np.asarray(w, np.float64) for w in base.layers[-1].get_weights()]
    m = with_features(base)
    probs, feats = m.predict(x.astype(np.float32), batch_size=256, verbose=0)  # [probs, features]
    keras.backend.clear_session()
    return np.asarray(probs, np.float64), np.asarray(feats, np.float64), head


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def batches_over(v: np.ndarray, limit: float, draws: int = 500, seed: int = 1) -> float:
    """Share of random ADAPT_MIN_IMAGES-cell batches of ``v`` whose median score is above ``limit``."""
    rng = np.random.default_rng(seed)
    k = min(ADAPT_MIN_IMAGES, len(v))
    return float(np.mean([np.median(rng.choice(v, k, replace=False)) > limit for _ in range(draws)]))


def rule_stats(pred, y, answered) -> dict:
    return {"coverage": float(answered.mean()), "answered_wrong": float((answered & (pred != y)).mean()),
            "answered_accuracy": float((pred[answered] == y[answered]).mean()) if answered.any() else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/loso")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    runs = Path(a.runs)
    loso = json.loads((runs / "loso.json").read_text())
    sources = loso["sources"]
    cc = load_cell_crops(sources)
    size = int(loso["hparams"].get("size") or 64)
    x = to_model_size(cc.x, (size, size))
    out = {"method": __doc__.strip().splitlines()[0], "shrink": OOD_SHRINK, "quantile": OOD_QUANTILE,
           "train_per_source": OOD_TRAIN_PER_SOURCE, "features": "float (Keras) penultimate features", "folds": {}}
    for held, fold in loso["folds"].items():
        run = runs / f"holdout_{held}"
        probs, feats, (kernel, bias) = fold_features(run, x)
        train_src = fold["train_sources"]
        tr = np.isin(cc.src, train_src) & (cc.split == "train")
        rng = np.random.default_rng(0)
        keep = np.zeros(len(cc.y), bool)
        for s in train_src:
            idx = np.flatnonzero(tr & (cc.src == s))
            keep[rng.choice(idx, min(len(idx), OOD_TRAIN_PER_SOURCE), replace=False)] = True
        means, whiten = fit_ood(feats[keep], cc.y[keep], probs.shape[1], OOD_SHRINK)
        stats = OODStats(means, whiten, 1.0)
        d = stats.score(feats)
        val = {s: d[(cc.src == s) & (cc.split == "val")] for s in train_src}
        t, basis = choose_threshold(val, OOD_QUANTILE)
        p = apply_temperature(probs, fold["temperature"])
        pred, conf = p.argmax(1), p.max(1)
        held_te = (cc.src == held) & (cc.split == "test")
        in_te = np.isin(cc.src, train_src) & (cc.split == "test")
        y = cc.y
        r = {"threshold": t, "val_flagged": basis["val_flagged"], "n_test": int(held_te.sum()),
             "held_out_flagged": float((d[held_te] > t).mean()),
             "in_source_test_flagged": {s: float((d[(cc.src == s) & (cc.split == "test")] > t).mean())
                                        for s in train_src},
             "auroc_held_out_vs_in_source_test": float(binary_auc(
                 np.r_[np.ones(held_te.sum()), np.zeros(in_te.sum())], np.r_[d[held_te], d[in_te]])),
             "top1": float((pred[held_te] == y[held_te]).mean())}
        conf_ok, ood_ok = conf >= fold["threshold"], d <= t
        for name, ok in (("confidence", conf_ok), ("ood", ood_ok), ("both", conf_ok & ood_ok)):
            r[name] = rule_stats(pred[held_te], y[held_te], ok[held_te])
        curve = []
        for q in QUANTILES:
            tq, _ = choose_threshold(val, q)
            ok = conf_ok & (d <= tq)
            curve.append({"quantile": q, "threshold": tq, **rule_stats(pred[held_te], y[held_te], ok[held_te]),
                          "in_source_coverage": float(ok[in_te].mean())})
        r["risk_coverage"] = curve
        # batch-level shift: the median distance of a source's test cells vs the training sources' val medians
        r["median_distance"] = {"held_out_test": float(np.median(d[held_te])),
                                **{f"val/{s}": float(np.median(v)) for s, v in val.items()},
                                **{f"test/{s}": float(np.median(d[(cc.src == s) & (cc.split == "test")]))
                                   for s in train_src}}
        # the run-level note of classify: the share of random 20-cell batches whose median is above the
        # limit fitted on the training sources' val batches (held-out: should fire; in-source: should not)
        limit, _ = batch_median_limit(val)
        r["batch_note"] = {"limit": limit, "held_out_test_batches_noted": batches_over(d[held_te], limit),
                           **{f"in_source_test_batches_noted/{s}": batches_over(d[(cc.src == s) & (cc.split == "test")],
                                                                                limit) for s in train_src}}
        # feature alignment with the head in NumPy: the held-out source's unlabelled train + val images
        # give its feature mean (and per-feature sd); the training sources' train features give theirs
        adapt = (cc.src == held) & (cc.split != "test")
        mu_s, sd_s = feats[keep].mean(0), feats[keep].std(0) + 1e-6
        mu_t, sd_t = feats[adapt].mean(0), feats[adapt].std(0) + 1e-6
        f_te = feats[held_te]
        hs = OODStats(means, whiten, t, None, kernel, bias, mu_s)
        em_shift, pi = hs.estimate_shift(feats[adapt])
        aligned = {"none": f_te, "mean": f_te - mu_t + mu_s, "mean_sd": (f_te - mu_t) / sd_t * sd_s + mu_s,
                   "em": f_te + em_shift}
        r["feature_alignment_top1"] = {k: float((softmax(v @ kernel + bias).argmax(1) == y[held_te]).mean())
                                       for k, v in aligned.items()}
        # the same on the held-out source's val split (what the choice of method may read)
        held_va = (cc.src == held) & (cc.split == "val")
        f_va = feats[held_va]
        r["feature_alignment_val_top1"] = {
            k: float((softmax(v @ kernel + bias).argmax(1) == y[held_va]).mean()) for k, v in {
                "none": f_va, "mean": f_va - mu_t + mu_s, "mean_sd": (f_va - mu_t) / sd_t * sd_s + mu_s,
                "em": f_va + em_shift}.items()}
        r["feature_alignment_adapt_n"] = int(adapt.sum())
        r["em_class_proportions"] = [round(float(v), 3) for v in pi]
        # after EM alignment: the per-cell OOD flag and the confidence rule on the shifted features
        fa = f_te + em_shift
        pa = apply_temperature(softmax(fa @ kernel + bias), fold["temperature"])
        ok = (pa.max(1) >= fold["threshold"]) & (hs.score(fa) <= t)
        r["em_both"] = rule_stats(pa.argmax(1), y[held_te], ok)
        # label shift inside a training source: one class at a time, adapted on itself (transductive)
        single = {"none": [], "mean": [], "em": []}
        for s in train_src:
            for c in range(probs.shape[1]):
                m = (cc.src == s) & (cc.split == "test") & (y == c)
                if m.sum() < 10:
                    continue
                fb = feats[m]
                sh, _ = hs.estimate_shift(fb)
                for k, v in (("none", fb), ("mean", fb - fb.mean(0) + mu_s), ("em", fb + sh)):
                    single[k].append(float((softmax(v @ kernel + bias).argmax(1) == c).mean()))
        r["single_class_batches_top1"] = {k: float(np.mean(v)) for k, v in single.items()}
        r["single_class_batches_n"] = len(single["none"])
        out["folds"][held] = r
        print(held, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                     if k in ("held_out_flagged", "auroc_held_out_vs_in_source_test", "top1")},
              "both:", {k: round(v, 3) for k, v in r["both"].items() if v is not None},
              "in-source flagged:", {k: round(v, 3) for k, v in r["in_source_test_flagged"].items()},
              "medians:", {k: round(v, 1) for k, v in r["median_distance"].items()}, "batch note:", r["batch_note"],
              "alignment:", {k: round(v, 3) for k, v in r["feature_alignment_top1"].items()},
              "em both:", {k: round(v, 3) for k, v in r["em_both"].items() if v is not None},
              "single-class:", {k: round(v, 3) for k, v in r["single_class_batches_top1"].items()})
    names = ("none", "mean", "mean_sd", "em")
    out["alignment_mean_over_folds"] = {
        split: {k: float(np.mean([f[key][k] for f in out["folds"].values()])) for k in names}
        for split, key in (("val", "feature_alignment_val_top1"), ("test", "feature_alignment_top1"))}
    print("alignment, mean over folds:", out["alignment_mean_over_folds"])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
