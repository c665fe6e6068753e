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
