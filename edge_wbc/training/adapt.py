"""Site adaptation of a field classifier to a user's microscope (Keras side; the CLI wraps it).

- *Unlabelled* (:func:`adabn`): re-estimate every BatchNorm layer's mean and variance on the user's
  crops (AdaBN, Li et al. 2016). Only the normalization statistics change.
- *Few-shot* (:func:`finetune_head`): with a few labelled cells, train the classification head
  (the last Dense layer) on them, after AdaBN, with flips and 90 degree turns.

Both return a new Keras model; the caller converts it to int8 calibrated on the same images.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

MIN_IMAGES = 20  # fewer unlabelled images than this cannot estimate the statistics


def clone(model):
    import keras

    m = keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    return m


def adabn(model, x: np.ndarray, batch: int = 512):
    """A copy of ``model`` with BatchNorm statistics re-estimated on ``x`` (N, H, W, 3) raw pixels.

    Exact statistics over all of ``x``: each BatchNorm layer, in graph order, gets the mean and
    variance of its input over every image (computed on the model whose earlier layers are already
    adapted), so the result does not depend on a batch size or a momentum.
    """
    import keras

    if len(x) < MIN_IMAGES:
        raise DataError(f"adaptation needs at least {MIN_IMAGES} images, got {len(x)}")
    m = clone(model)
    bns = [layer for layer in m.layers if isinstance(layer, keras.layers.BatchNormalization)]
    x = np.asarray(x, np.float32)
    for bn in bns:
        probe = keras.Model(m.inputs, bn.input)
        s, s2, n = 0.0, 0.0, 0
        for i in range(0, len(x), batch):
            a = np.asarray(probe(x[i : i + batch], training=False), np.float64)
            a = a.reshape(-1, a.shape[-1])
            s = s + a.sum(0)
            s2 = s2 + (a * a).sum(0)
            n += len(a)
        mean = s / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
        bn.moving_mean.assign(mean.astype(np.float32))
        bn.moving_variance.assign(var.astype(np.float32))
    return m


def finetune_head(model, x: np.ndarray, y: np.ndarray, epochs: int = 60, lr: float = 3e-3, seed: int = 0):
    """A copy of ``model`` whose last Dense layer is trained on the labelled crops ``x``, ``y``."""
    import keras
    import tensorflow as tf

    if len(x) < 2:
        raise DataError(f"few-shot adaptation needs labelled cells, got {len(x)}")
    keras.utils.set_random_seed(seed)
    m = clone(model)
    head = [layer for layer in m.layers if isinstance(layer, keras.layers.Dense)][-1]
    for layer in m.layers:
        layer.trainable = layer is head
    m.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")

    def aug(a, b):
        a = tf.image.random_flip_left_right(a)
        a = tf.image.random_flip_up_down(a)
        return tf.image.rot90(a, tf.random.uniform([], 0, 4, tf.int32)), b

    ds = (
        tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y, np.int64)))
        .shuffle(len(x), seed=seed)
        .repeat(4)
        .map(aug)
        .batch(16)
    )
    m.fit(ds, epochs=epochs, verbose=0)
    for layer in m.layers:
        layer.trainable = True
    return m


def pick_shots(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` indices of ``y``, spread over the classes present (round-robin over shuffled classes)."""
    rng = np.random.default_rng(seed)
    by = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)}
    out: list[int] = []
    while len(out) < k and any(by.values()):
        for c in list(by):
            if by[c] and len(out) < k:
                out.append(int(by[c].pop()))
    return np.array(sorted(out), np.int64)


def read_labels_csv(path, images: list, vocab) -> dict:
    """``file,label`` rows (header optional) -> {image path: class index}; every file must be one of
    ``images`` (matched by file name or relative path) and every label a class of ``vocab``."""
    import csv
    from pathlib import Path

    by_name = {}
    for p in images:
        by_name.setdefault(Path(p).name, p)
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DataError(f"{path}: line {i + 1} has no label: expected file,label")
            f, lab = row[0].strip(), row[1].strip().lower()
            if i == 0 and lab in ("label", "class"):
                continue
            key = Path(f).name
            if key not in by_name:
                raise DataError(f"{path}: line {i + 1}: {f!r} is not among the --images files")
            if lab not in vocab:
                raise DataError(f"{path}: line {i + 1}: unknown class {lab!r}; valid classes are {', '.join(vocab)}")
            out[by_name[key]] = vocab.index(lab)
    if not out:
        raise DataError(f"{path}: no labelled rows")
    return out


def adapt_bundle(model: str, images, out, labels_csv=None, data=None, log=print, seed: int = 0) -> dict:
    """``edge-wbc adapt``: AdaBN on the user's images (+ head fine-tuning on labelled ones), then an
    int8 bundle calibrated on those images, written to ``out`` as a whole or not at all."""
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import keras

    from ..assets import assets_dir
    from ..data import Dataset, Split, iter_inputs
    from ..errors import ModelError
    from ..fileio import atomic_write_text
    from ..spec import ModelSpec, spec_path_for
    from ..tasks.cellsets import to_model_size

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    src = Path(model)
    if not src.exists():
        src = assets_dir() / model
    keras_path = src / "model.keras" if src.is_dir() else src.with_suffix(".keras")
    if not keras_path.is_file():
        raise ModelError(f"{model}: adapt needs the float Keras weights ({keras_path} not found); "
                         "pass a training run dir or a shipped field model name such as wbc_field")
    spec = ModelSpec.load(src / "model.json" if src.is_dir() else spec_path_for(keras_path))
    if spec.crop != "wbc":
        raise ModelError(f"{model}: adapt is for field models (crop 'wbc'); this model's crop is {spec.crop!r}")
    files = sorted(iter_inputs(images if isinstance(images, (list, tuple)) else [images]))
    if len(files) < MIN_IMAGES:
        raise DataError(f"{images}: adaptation needs at least {MIN_IMAGES} images, found {len(files)}")
    labelled = read_labels_csv(labels_csv, files, spec.labels) if labels_csv else {}
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: output directory exists and is not empty; choose a new --out")
    # crops, as the runtime sees them
    from ..preprocess import load_image
    from ..runtime.wbccrop import canonical_crop, crop_segmenter

    seg = crop_segmenter(spec.crop_model)
    from PIL import Image

    x = np.stack([np.asarray(canonical_crop(load_image(f), seg, spec.crop_ratio)[0]
                             .resize((spec.input_width, spec.input_height), Image.Resampling.BICUBIC)) for f in files])
    from ..keras_objects import custom_objects
    base = keras.saving.load_model(keras_path, compile=False, custom_objects=custom_objects())
    log(f"AdaBN: re-estimating BatchNorm statistics on {len(x)} images")
    m = adabn(base, x)
    how = {"unlabelled_images": len(files), "adabn": True, "labelled_cells": len(labelled)}
    if labelled:
        idx = [files.index(f) for f in labelled]
        log(f"few-shot: fine-tuning the head on {len(idx)} labelled cells")
        m = finetune_head(m, x[idx], np.array(list(labelled.values())), seed=seed)
    tmp = Path(tempfile.mkdtemp(prefix=".adapt-", dir=out.parent if out.parent.exists() else None))
    try:
        m.save(tmp / "model.keras")
        new_spec = spec.replace(metrics={**{k: v for k, v in spec.metrics.items() if not k.startswith("test")},
                                         "adapted_on": {**how, "images": str(images), "from": str(keras_path)}})
        new_spec.save(tmp / "model.json")
        ds = Dataset("adapt", spec.labels, {
            "train": Split(to_model_size(x, (spec.input_height, spec.input_width)), np.zeros(len(x), np.int64),
                           [str(f) for f in files]),
            "val": Split(x[: min(len(x), 200)], np.zeros(min(len(x), 200), np.int64), [str(f) for f in files[:200]]),
        })
        from ..converters import convert_model_dir

        report = convert_model_dir(tmp, "int8", override=ds, calib=min(300, len(x)), min_agreement=0.0, log=log)
        atomic_write_text(tmp / "labels.txt", "\n".join(spec.labels) + "\n")
        atomic_write_text(tmp / "adapt.json", json.dumps({**how, "model": str(keras_path),
                                                          "int8_agreement_with_float": report.get("agreement")},
                                                         indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), **how, "agreement": report.get("agreement")}
