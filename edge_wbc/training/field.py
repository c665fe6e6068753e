"""The field classifier's trainer: several cell sources, WBC-centred crops, robustness augmentation.

``train_field(FieldHParams(sources=("pbc128", "bccd", "wbcseg")), out)`` trains a five-class WBC
classifier (:data:`edge_wbc.data.cells.VOCAB`) on the train splits of the sources, with

- every image through the canonical WBC crop (:mod:`edge_wbc.runtime.wbccrop`), cached at 80 px;
- source-balanced sampling: each batch draws the sources equally, and inside a source the classes
  by the square root of their frequency (a source that lacks a class simply never draws it);
- augmentation for the shifts between microscopes: scale jitter (a random 62-100 % square of the
  crop, sometimes zoomed out by reflect padding), random resize filter (bicubic, bilinear, area,
  nearest), flips and 90 degree turns, HED stain jitter, hue/saturation/brightness/contrast, gamma,
  Gaussian blur, Gaussian noise and JPEG re-encoding;
- the epoch kept that has the best mean per-source val accuracy (val splits of the training
  sources only);

and writes the usual artifacts (model.keras, model.json with ``crop: "wbc"``, metrics.json,
history.csv, curves.png, confusion.png). ``holdout`` leaves one source out of training and
validation entirely (leave-one-source-out, :mod:`edge_wbc.training.loso`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.cells import VOCAB
from ..defaults import CROP_RATIO, CROP_SEGMENTER
from ..errors import SpecError
from ..metrics.classification import classification_report
from ..spec import ModelSpec
from .registry import build_model, get_model

AUGMENTS = ("field", "light", "none")


@dataclass
class FieldHParams:
    sources: tuple[str, ...] = ("pbc128", "bccd", "wbcseg")
    model: str = "fieldnet"
    holdout: str | None = None  # a source left out of training and validation (LOSO)
    size: int = 64
    epochs: int = 14
    steps: int = 120  # batches per epoch
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    augment: str = "field"
    crop_ratio: float = CROP_RATIO
    crop_model: str = CROP_SEGMENTER
    label_map: dict = field(default_factory=dict)
    limit: int | None = None  # at most this many train images per source (tests, smoke runs)
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.sources = tuple(self.sources)
        if len(self.sources) < 1:
            raise SpecError("a field model needs at least one cell source")
        if self.holdout is not None and self.holdout not in self.sources:
            raise SpecError(f"holdout {self.holdout!r} is not one of the sources {', '.join(self.sources)}")
        if self.holdout is not None and len(self.sources) < 2:
            raise SpecError("leave-one-source-out needs at least two sources")
        if self.augment not in AUGMENTS:
            raise SpecError(f"invalid augment {self.augment!r}: valid choices are {', '.join(AUGMENTS)}")
        if self.epochs < 1 or self.steps < 1 or self.batch < 1:
            raise SpecError(f"epochs, steps and batch must be >= 1, got {self.epochs}, {self.steps}, {self.batch}")
        if not 16 <= self.size <= 256:
            raise SpecError(f"invalid size {self.size}: a field model takes 16 to 256 px")
        entry = get_model(self.model)
        if entry.task != "classification":
            raise SpecError(f"{self.model!r} is a {entry.task} model; a field classifier needs a classifier")

    @property
    def train_sources(self) -> tuple[str, ...]:
        return tuple(s for s in self.sources if s != self.holdout)


def field_spec(hp: FieldHParams) -> ModelSpec:
    return ModelSpec(
        task="classification",
        input_height=hp.size,
        input_width=hp.size,
        labels=VOCAB,
        crop="wbc",
        crop_ratio=float(hp.crop_ratio),
        crop_model=hp.crop_model,
        dataset=",".join(hp.train_sources),
        source_model=hp.model,
        model_kwargs=dict(hp.model_kwargs),
        split_seed=hp.seed,
    )


# ---- augmentation (TensorFlow ops, per image, in the tf.data map) ----------------------------
_HED_FROM_RGB = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)  # Ruifrok & Johnston


def make_augment(tf, size: int, kind: str = "field"):
    """x: (s, s, 3) uint8 crop -> (size, size, 3) float 0..255, randomly perturbed as ``kind`` says."""
    hed2rgb = tf.constant(_HED_FROM_RGB)
    rgb2hed = tf.constant(np.linalg.inv(_HED_FROM_RGB))
    methods = ("bicubic", "bilinear", "area", "nearest")

    def resize(x):
        if kind == "none":
            return tf.image.resize(x, [size, size], "bicubic")
        m = tf.random.uniform([], 0, len(methods), tf.int32)
        return tf.switch_case(m, [lambda mm=mm: tf.image.resize(x, [size, size], mm) for mm in methods])

    def blur(x, sigma):
        k = tf.range(-3, 4, dtype=tf.float32)
        g = tf.exp(-k * k / (2 * sigma * sigma))
        g /= tf.reduce_sum(g)
        kx = tf.tile(tf.reshape(g, [1, 7, 1, 1]), [1, 1, 3, 1])
        ky = tf.tile(tf.reshape(g, [7, 1, 1, 1]), [1, 1, 3, 1])
        y = tf.nn.depthwise_conv2d(x[None], kx, [1, 1, 1, 1], "SAME")
        return tf.nn.depthwise_conv2d(y, ky, [1, 1, 1, 1], "SAME")[0]

    def hed(x, sigma=0.24, bias=0.09):
        od = -tf.math.log(tf.clip_by_value(x, 1e-3, 1.0))
        h = tf.reshape(od, [-1, 3]) @ rgb2hed
        h = h * tf.random.uniform([3], 1 - sigma, 1 + sigma) + tf.random.uniform([3], -bias, bias)
        return tf.reshape(tf.exp(-tf.maximum(h @ hed2rgb, 0.0)), tf.shape(x))

    def aug(img, label):
        x = tf.cast(img, tf.float32) / 255.0
        if kind == "none":
            return tf.clip_by_value(resize(x), 0.0, 1.0) * 255.0, label
        side = tf.cast(tf.cast(tf.shape(x)[0], tf.float32) * tf.random.uniform([], 0.62, 1.0), tf.int32)
        x = tf.image.random_crop(x, [side, side, 3])
        if kind == "field" and tf.random.uniform([]) < 0.3:
            pad = tf.cast(tf.cast(side, tf.float32) * tf.random.uniform([], 0.0, 0.25), tf.int32)
            x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        x = resize(x)
        x = tf.image.random_flip_left_right(x)
        x = tf.image.random_flip_up_down(x)
        x = tf.image.rot90(x, tf.random.uniform([], 0, 4, tf.int32))
        x = tf.clip_by_value(x, 0.0, 1.0)
        if kind == "field":
            x = hed(x)
        x = tf.image.random_hue(x, 0.06)
        x = tf.image.random_saturation(x, 0.6, 1.5)
        x = tf.image.random_brightness(x, 0.15)
        x = tf.image.random_contrast(x, 0.7, 1.3)
        x = tf.clip_by_value(x, 1e-3, 1.0)
        if kind == "field":
            x = x ** tf.exp(tf.random.uniform([], -0.35, 0.35))  # gamma
            if tf.random.uniform([]) < 0.4:
                x = blur(x, tf.random.uniform([], 0.3, 1.6))
            if tf.random.uniform([]) < 0.4:
                x = x + tf.random.normal(tf.shape(x), 0.0, tf.random.uniform([], 0.0, 0.04))
            x = tf.clip_by_value(x, 0.0, 1.0)
            if tf.random.uniform([]) < 0.4:
                x = tf.image.adjust_jpeg_quality(x, tf.random.uniform([], 30, 95, tf.int32))
        return tf.clip_by_value(x, 0.0, 1.0) * 255.0, label

    return aug


def balanced_stream(tf, x: np.ndarray, y: np.ndarray, src: np.ndarray, sources, seed: int):
    """An endless tf.data stream of (crop, label): sources drawn equally, classes by sqrt(frequency)."""
    per_source = []
    for s in sources:
        parts, weights = [], []
        for c in range(len(VOCAB)):
            idx = np.flatnonzero((src == s) & (y == c))
            if len(idx):
                parts.append(tf.data.Dataset.from_tensor_slices((x[idx], y[idx])).shuffle(len(idx), seed=seed).repeat())
                weights.append(np.sqrt(len(idx)))
        if not parts:
            raise SpecError(f"source {s!r} has no train images")
        w = np.asarray(weights) / np.sum(weights)
        per_source.append(tf.data.Dataset.sample_from_datasets(parts, weights=w.tolist(), seed=seed))
    n = len(per_source)
    return tf.data.Dataset.sample_from_datasets(per_source, weights=[1.0 / n] * n, seed=seed)


def _limit(mask: np.ndarray, src: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if not limit:
        return mask
    rng = np.random.default_rng(seed)
    out = np.zeros_like(mask)
    for s in np.unique(src[mask]):
        idx = np.flatnonzero(mask & (src == s))
        out[rng.permutation(idx)[:limit]] = True
    return out


def per_source_metrics(probs: np.ndarray, y: np.ndarray, src: np.ndarray) -> dict:
    """classification_report per source (present classes only), plus the source count."""
    out = {}
    for s in sorted(set(src.tolist())):
        m = src == s
        out[s] = classification_report(y[m], probs[m], VOCAB)
    return out


def train_field(hp: FieldHParams, out_dir: str | Path, data=None, log=print, crops=None) -> dict:
    """Train a field classifier into ``out_dir``; returns its metrics (also in metrics.json)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from ..tasks.cellsets import load_cell_crops, to_model_size
    from .artifacts import save_artifacts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(hp.seed)
    spec = field_spec(hp)
    t0 = time.time()
    cc = (
        crops
        if crops is not None
        else load_cell_crops(hp.sources, data, hp.seed, hp.crop_ratio, hp.crop_model, hp.label_map or None)
    )
    log(
        f"{len(cc.y)} cells from {', '.join(hp.sources)} cropped in {time.time() - t0:.0f} s"
        + (f"; {hp.holdout} held out" if hp.holdout else "")
    )
    src, split, y = cc.src, cc.split, cc.y
    train_m = _limit(np.isin(src, hp.train_sources) & (split == "train"), src, hp.limit, hp.seed)
    val_m = _limit(np.isin(src, hp.train_sources) & (split == "val"), src, hp.limit, hp.seed)
    ds = balanced_stream(tf, cc.x[train_m], y[train_m], src[train_m], hp.train_sources, hp.seed)
    ds = ds.map(make_augment(tf, hp.size, hp.augment), num_parallel_calls=2).batch(hp.batch).prefetch(4)

    model = build_model(hp.model, spec, **hp.model_kwargs)
    schedule = keras.optimizers.schedules.CosineDecay(hp.lr, decay_steps=hp.epochs * hp.steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    xv, yv, sv = to_model_size(cc.x[val_m], (hp.size, hp.size)), y[val_m], src[val_m]
    history: dict[str, list] = {"loss": [], "accuracy": [], "val_accuracy": []}
    best, best_w, best_ep = -1.0, None, -1
    for ep in range(hp.epochs):
        h = model.fit(ds, steps_per_epoch=hp.steps, epochs=1, verbose=0)
        pv = model.predict(xv, batch_size=256, verbose=0)
        per = {s: float(np.mean(pv[sv == s].argmax(1) == yv[sv == s])) for s in hp.train_sources if (sv == s).any()}
        score = float(np.mean(list(per.values())))
        history["loss"].append(float(h.history["loss"][-1]))
        history["accuracy"].append(float(h.history["accuracy"][-1]))
        history["val_accuracy"].append(score)
        log(
            f"epoch {ep + 1}/{hp.epochs}: loss {history['loss'][-1]:.4f}, mean per-source val accuracy {score:.4f} "
            f"({', '.join(f'{k} {v:.3f}' for k, v in per.items())})"
        )
        if score > best:
            best, best_w, best_ep = score, model.get_weights(), ep
    model.set_weights(best_w)
    train_s = time.time() - t0

    def probs(mask):
        return model.predict(to_model_size(cc.x[mask], (hp.size, hp.size)), batch_size=256, verbose=0)

    test_m = np.isin(src, hp.train_sources) & (split == "test")
    metrics = {
        "hparams": asdict(hp),
        "best_epoch": best_ep + 1,
        "val_accuracy": best,  # mean per-source val accuracy (the selection score)
        "train_seconds": train_s,
        "train_counts": {s: int((train_m & (src == s)).sum()) for s in hp.train_sources},
        "dropped": cc.items.dropped,
        "wbc_not_found": {s: int(((src == s) & ~cc.found).sum()) for s in hp.sources},
        "val": per_source_metrics(model.predict(xv, batch_size=256, verbose=0), yv, sv),
        "test": per_source_metrics(probs(test_m), y[test_m], src[test_m]),
        "beats_chance": True,
    }
    if hp.holdout:
        hm = src == hp.holdout
        metrics["heldout"] = {"source": hp.holdout, **per_source_metrics(probs(hm), y[hm], src[hm])[hp.holdout]}
    pt = probs(test_m)
    cm = np.zeros((len(VOCAB), len(VOCAB)), int)
    for t, p in zip(y[test_m], pt.argmax(1)):
        cm[t, p] += 1
    spec = spec.replace(
        metrics={
            "split": "test",
            "val_accuracy": best,
            **{f"test_accuracy/{s}": v["accuracy"] for s, v in metrics["test"].items()},
        }
    )
    save_artifacts(out, model, spec, metrics, history, confusion=cm)
    log(f"best epoch {best_ep + 1}: mean per-source val accuracy {best:.4f}; wrote {out}")
    return metrics
