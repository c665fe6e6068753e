"""Training for segmentation models (``unet``): WBC / nucleus masks and BCCD smear WBC maps.

Loss: binary cross-entropy + soft Dice per channel, skipping pixels whose target is -1 (unknown,
e.g. the nucleus channel of SigTuple masks); ``boundary_weight`` > 0 weights the cross-entropy of
pixels near a mask boundary by 1 + boundary_weight (as the U-Net paper's weight map does for borders).
Augmentation (train split only, after the fixed split): flips, 90-degree rotations (square inputs)
and small shifts, applied to image and mask together, and photometric jitter of the image alone.
``refit`` trains on train + val for a fixed number of epochs and keeps the last one.
Writes model.keras, model.json, history.csv, curves.png and metrics.json (Dice / IoU per channel
and per source dataset on the test split).
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from ..data.catalog import default_size
from ..data.segdata import load_seg_dataset
from ..metrics.segmentation import dice_summary, label_grids, seg_report
from ..spec import ModelSpec
from .artifacts import save_artifacts, save_keras
from .registry import build_model
from .train import HParams, ema_callbacks, init_from, limit_splits, load_best, make_optimizer, photometric, setup

__all__ = ["train_seg", "boundary_band", "dice_summary", "label_grids", "seg_report"]


def boundary_band(tf, t, width: int = 2):
    """1 on pixels within ``width`` px of a boundary of the binary maps ``t`` (N, H, W, C), else 0."""
    k = 2 * width + 1
    dilated = tf.nn.max_pool2d(t, k, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-t, k, 1, "SAME")
    return dilated - eroded


def train_seg(hp: HParams, out_dir, data=None, verbose: int = 2, log=print) -> dict:
    keras, tf, out = setup(hp, out_dir)
    t0 = time.time()
    h, w = (hp.size, hp.size) if hp.size else default_size(hp.dataset, "segmentation", (128, 128))
    probe = ModelSpec(
        "segmentation",
        h,
        w,
        ("wbc",),
        dataset=hp.dataset,
        source_model=hp.model,
        model_kwargs=dict(hp.model_kwargs),
        split_seed=hp.seed,
    )
    ds = load_seg_dataset(hp.dataset, probe, data=data, seed=hp.seed)
    limit_splits(ds, hp.limit, hp.seed)
    spec = probe.replace(labels=ds.labels)
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    grids = label_grids(tr, ds.labels)  # annotation grids, read off the training masks only
    log(f"data: {hp.dataset} train {len(tr)} val {len(va)} test {len(te)} at {h}x{w} ({time.time() - t0:.1f}s)")
    if hp.refit:  # the recipe was chosen on val; now val is training data and the last epoch is kept
        tr = tr.concat(va)
        log(f"refit: training on train + val ({len(tr)} images) for {hp.epochs} epochs, no val selection")
    model = build_model(hp.model, spec, **hp.model_kwargs)
    if hp.init:
        n, skipped = init_from(model, hp.init, keras)
        log(f"init: {n} layers from {hp.init}" + (f"; kept random: {', '.join(skipped)}" if skipped else ""))

    def loss_fn(y_true, y_pred):
        valid = tf.cast(y_true >= 0, tf.float32)
        t = tf.clip_by_value(y_true, 0.0, 1.0)
        p = tf.clip_by_value(y_pred, 1e-6, 1 - 1e-6)
        weight = valid
        if hp.boundary_weight:
            weight = valid * (1.0 + hp.boundary_weight * boundary_band(tf, t))
        bce = -(t * tf.math.log(p) + (1 - t) * tf.math.log(1 - p)) * weight
        bce = tf.reduce_sum(bce) / (tf.reduce_sum(weight) + 1.0)
        inter = tf.reduce_sum(p * t * valid, axis=[1, 2])
        denom = tf.reduce_sum((p + t) * valid, axis=[1, 2])
        has = tf.cast(tf.reduce_sum(valid, axis=[1, 2]) > 0, tf.float32)
        dice = (2 * inter + 1.0) / (denom + 1.0)
        dice_loss = tf.reduce_sum((1 - dice) * has) / (tf.reduce_sum(has) + 1e-6)
        return bce + dice_loss

    model.compile(optimizer=make_optimizer(hp, int(np.ceil(len(tr) / hp.batch)), keras), loss=loss_fn)
    square = h == w

    def aug(x, y):
        xy = tf.concat([tf.cast(x, tf.float32), y], axis=-1)
        xy = tf.image.random_flip_left_right(xy)
        xy = tf.image.random_flip_up_down(xy)
        if square:
            xy = tf.image.rot90(xy, tf.random.uniform([], 0, 4, dtype=tf.int32))
        pad = max(2, h // 16)
        xy = tf.pad(xy, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        xy = tf.image.random_crop(xy, [tf.shape(xy)[0], h, w, tf.shape(xy)[-1]])
        return photometric(tf, xy[..., :3], hp.jitter), xy[..., 3:]

    train_ds = tf.data.Dataset.from_tensor_slices((tr.images, tr.labels)).shuffle(len(tr), seed=hp.seed).batch(hp.batch)
    if hp.augment:
        train_ds = train_ds.map(aug)
    ckpt = out / "model.keras"
    if hp.refit:
        fit = model.fit(
            train_ds.prefetch(2),
            epochs=hp.epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=[*ema_callbacks(hp, keras)],
        )
        save_keras(model, ckpt)  # the last epoch (the EMA weights when --ema: swapped in at each epoch end)
    else:
        val_ds = tf.data.Dataset.from_tensor_slices((va.images.astype(np.float32), va.labels)).batch(32)
        fit = model.fit(
            train_ds.prefetch(2),
            validation_data=val_ds,
            epochs=hp.epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=[
                *ema_callbacks(hp, keras),
                keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_loss", save_best_only=True),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp.patience, restore_best_weights=True),
            ],
        )
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    model = load_best(keras, ckpt)
    pred = model.predict(te.images.astype(np.float32), batch_size=16, verbose=0)
    rep = seg_report(pred, te.labels, spec.labels, te.groups, grids=grids)
    metrics = {
        "model": hp.model,
        "dataset": hp.dataset,
        "split": "test",
        "n": len(te),
        "train_seconds": round(time.time() - t0, 1),
        "params": int(model.count_params()),
        "best_epoch": int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else len(history["loss"]),
        "hparams": asdict(hp),
        "segmentation": rep,
    }
    keep = ("dice", "iou", "n", "grid", "dice_grid", "iou_grid")
    spec = spec.replace(metrics={k: {f: v[f] for f in keep if f in v} for k, v in rep.items()} | {"split": "test"})
    save_artifacts(out, model, spec, metrics, history)
    log("done: " + dice_summary(rep))
    return metrics
