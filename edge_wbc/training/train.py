"""Training entry point, driven by :class:`HParams`.

``train(HParams(model="wbcnet", dataset="bloodmnist"), out_dir)`` writes into ``out_dir``:
``model.keras`` (best val checkpoint), ``model.json`` (the ModelSpec), ``history.csv``,
``curves.png``, ``confusion.png`` and ``metrics.json`` (test accuracy, macro-F1, per-class
precision/recall, one-vs-rest AUC). It refuses to call a model done if it does not beat chance.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data import Dataset, load_dataset
from ..data.catalog import default_size
from ..errors import DataError, SpecError
from ..metrics.classification import classification_report
from ..runtime.probs import keras_probs
from ..spec import ModelSpec
from .artifacts import save_artifacts
from .registry import build_model, check_kwargs, get_model

OPTIMIZERS = ("adam", "adadelta", "sgd")


@dataclass
class HParams:
    model: str
    dataset: str = "bloodmnist"
    size: int | None = None
    epochs: int = 30
    batch: int = 64
    optimizer: str = "adam"
    lr: float | None = None
    class_weights: str | None = None  # None | "balanced"
    seed: int = 0
    patience: int = 8
    augment: bool = True
    label_smoothing: float = 0.0
    jitter: float = 0.0
    ema: float = (
        0.0  # > 0: keep an exponential moving average of the weights (this momentum); val and checkpoints use it
    )
    boundary_weight: float = 0.0  # segmentation: extra cross-entropy weight on pixels within 2 px of a mask boundary
    # segmentation: train on train + val for exactly `epochs` and keep the last epoch (recipe chosen on val before)
    refit: bool = False
    limit: int | None = None  # use only the first N images of each split (smoke runs, tests)
    init: str | None = (
        None  # a model dir or .keras file whose weights start the run (same-named layers of the same shape)
    )
    model_kwargs: dict = field(default_factory=dict)
    # k-fold cross-validation of a folder tree: fold `fold` of a seeded stratified `folds`-fold split is
    # the test split, a stratified slice of the other folds is val (None: the default split)
    folds: int | None = None
    fold: int | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise SpecError(f"invalid optimizer {self.optimizer!r}: valid choices are {', '.join(OPTIMIZERS)}")
        if self.class_weights not in (None, "balanced"):
            raise SpecError(f"invalid class weights {self.class_weights!r}: valid choices are balanced")
        if not 0.0 <= self.jitter <= 1.0:
            raise SpecError(f"invalid jitter {self.jitter}: valid range is 0 to 1")
        if not (self.ema == 0.0 or 0.9 <= self.ema < 1.0):
            raise SpecError(f"invalid ema momentum {self.ema}: valid choices are 0 (off) or 0.9 <= ema < 1")
        if self.boundary_weight < 0:
            raise SpecError(f"invalid boundary weight {self.boundary_weight}: must be >= 0")
        if self.epochs < 1 or self.batch < 1:
            raise SpecError(f"epochs and batch must be >= 1, got {self.epochs} and {self.batch}")
        check_kwargs(self.model, self.model_kwargs)  # also rejects an unknown model name
        if get_model(self.model).task != "segmentation":
            for flag, on in (("--boundary-weight", self.boundary_weight), ("--refit", self.refit)):
                if on:
                    raise SpecError(f"{flag} is for segmentation models; {self.model!r} is a classifier")
        elif self.folds is not None:
            raise SpecError(f"--folds is for classifiers on a folder tree; {self.model!r} is a segmentation model")
        elif self.class_weights or self.label_smoothing:
            raise SpecError(
                f"--class-weights and label smoothing are for classifiers; {self.model!r} is a segmentation model"
            )
        if self.fold is not None and self.folds is None:
            raise SpecError(f"--fold {self.fold} needs --folds (e.g. --folds 5 --fold {self.fold})")
        if self.folds is not None:
            if self.folds < 2:
                raise SpecError(f"invalid folds {self.folds}: must be >= 2")
            if self.fold is None:
                self.fold = 0
            if not 0 <= self.fold < self.folds:
                raise SpecError(f"invalid fold {self.fold}: valid choices are 0 to {self.folds - 1}")
        if self.init:
            init_path(self.init)  # fail before any data is loaded


def make_spec(hp: HParams, labels: tuple[str, ...]) -> ModelSpec:
    entry = get_model(hp.model)
    size = hp.size or default_size(hp.dataset, "classification", entry.default_size)[0]
    task = entry.task
    if task == "classification" and len(labels) == 2 and entry.name == "binary2":
        task = "binary"
    return ModelSpec(task=task, input_height=size, input_width=size, labels=labels,
                     dataset=hp.dataset, source_model=hp.model, model_kwargs=dict(hp.model_kwargs), split_seed=hp.seed)


def load_for_training(hp: HParams, data=None) -> tuple[ModelSpec, Dataset]:
    probe = make_spec(hp, ("a", "b"))  # only the input size is used for loading
    ds = load_dataset(hp.dataset, probe, data=data, seed=hp.seed, folds=hp.folds, fold=hp.fold)
    spec = probe.replace(labels=ds.labels)
    limit_splits(ds, hp.limit, hp.seed)
    return spec, ds


def limit_splits(ds: Dataset, limit: int | None, seed: int) -> None:
    """Keep a seeded random ``limit`` images of each split, in place (smoke runs, tests)."""
    if not limit:
        return
    rng = np.random.default_rng(seed)
    for name, sp in ds.splits.items():
        idx = np.sort(rng.permutation(len(sp))[:limit])
        ds.splits[name] = type(sp)(sp.images[idx], sp.labels[idx], [sp.ids[i] for i in idx],
                                   [sp.groups[i] for i in idx] if sp.groups else None)


def photometric(tf, x, strength: float):
    """Random brightness, contrast, saturation and hue of a batch of float RGB images in 0..255.

    Drawn per image: a shift or scale shared by the whole batch would be undone by the BatchNorm
    that follows the first convolution.
    """
    if strength <= 0:
        return x

    def one(im):
        im = tf.image.random_brightness(im / 255.0, 0.1 * strength)
        im = tf.image.random_contrast(im, 1 - 0.2 * strength, 1 + 0.2 * strength)
        if im.shape[-1] == 3:
            im = tf.image.random_saturation(tf.clip_by_value(im, 0.0, 1.0), 1 - 0.2 * strength, 1 + 0.2 * strength)
            im = tf.image.random_hue(im, 0.04 * strength)
        return tf.clip_by_value(im, 0.0, 1.0) * 255.0

    return tf.map_fn(one, x)


def make_optimizer(hp: HParams, steps_per_epoch: int, keras):
    """The optimizer of ``hp`` (cosine-decayed learning rate; EMA of the weights when ``hp.ema``)."""
    lr = hp.lr or {"adam": 2e-3, "adadelta": 1.0, "sgd": 0.05}[hp.optimizer]
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps_per_epoch * hp.epochs, alpha=0.02)
    ema = {"use_ema": True, "ema_momentum": hp.ema} if hp.ema else {}
    return {
        "adam": lambda: keras.optimizers.Adam(schedule, **ema),
        "adadelta": lambda: keras.optimizers.Adadelta(lr, **ema),
        "sgd": lambda: keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, **ema),
    }[hp.optimizer]()


def ema_callbacks(hp: HParams, keras) -> list:
    """Put first in the callback list: swaps the EMA weights in for validation, checkpoints and early stopping."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if hp.ema else []


def _augment_fn(tf, size_h, size_w, seed, jitter=0.0):
    pad = max(2, size_h // 10)

    def aug(x, y):
        x = photometric(tf, x, jitter)
        x = tf.image.random_flip_left_right(x)
        x = tf.image.random_flip_up_down(x)
        if size_h == size_w:
            k = tf.random.uniform([], 0, 4, dtype=tf.int32)
            x = tf.image.rot90(x, k)
        # shift by up to ~10 %: reflect-pad, random crop back
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        x = tf.image.random_crop(x, [tf.shape(x)[0], size_h, size_w, tf.shape(x)[-1]])
        return x, y

    return aug


def init_path(source) -> Path:
    """The .keras file behind ``--init``: the file itself, or ``model.keras`` in a model dir."""
    path = Path(source)
    path = path / "model.keras" if path.is_dir() else path
    if path.suffix != ".keras" or not path.is_file():
        raise DataError(f"--init {source}: no model.keras there")
    return path


def init_from(model, source, keras) -> tuple[int, list[str]]:
    """Copy weights from ``source`` (model dir or .keras) into same-named layers with the same shapes.

    Transfer learning: e.g. start a BCCD classifier from the PBC model of the same architecture; the
    head (a different number of classes) keeps its random weights. Returns (layers copied, layers kept).
    """
    from ..keras_objects import custom_objects

    loaded = keras.saving.load_model(init_path(source), safe_mode=True, compile=False, custom_objects=custom_objects())
    src = {layer.name: layer for layer in loaded.layers}
    copied, skipped = 0, []
    for layer in model.layers:
        if not layer.weights:
            continue
        other = src.get(layer.name)
        theirs = other.get_weights() if other is not None else None
        if theirs is not None and [w.shape for w in theirs] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(theirs)
            copied += 1
        else:
            skipped.append(layer.name)
    if not copied:
        raise SpecError(
            f"--init {source}: no layer matches {model.name!r} by name and shape (is it the same architecture?)"
        )
    return copied, skipped


#: Keras model -> (N, num_classes) probabilities (one definition, in the runtime: bench and conversion use it too).
predict_probs = keras_probs


def setup(hp: HParams, out_dir: str | Path, deterministic: bool = False):
    """What both trainers do first: quiet TensorFlow, import Keras, seed everything, make ``out_dir``."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(hp.seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return keras, tf, out


def load_best(keras, ckpt: Path):
    """The best checkpoint, reloaded as a user would load it (safe mode, no pickle)."""
    from ..keras_objects import custom_objects
    return keras.saving.load_model(ckpt, safe_mode=True, compile=False, custom_objects=custom_objects())


def train(hp: HParams, out_dir: str | Path, data=None, verbose: int = 2, log=print) -> dict:
    keras, tf, out = setup(hp, out_dir, deterministic=True)
    t0 = time.time()
    spec, ds = load_for_training(hp, data)
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    if len(tr) == 0 or len(va) == 0:
        raise DataError(f"{hp.dataset}: train ({len(tr)}) and val ({len(va)}) must not be empty")
    log(
        f"data: {hp.dataset} train {len(tr)} val {len(va)} test {len(te)} at {spec.input_height}px, "
        f"{len(spec.labels)} classes ({time.time() - t0:.1f}s)"
    )

    model = build_model(hp.model, spec, **hp.model_kwargs)
    if hp.init:
        n, skipped = init_from(model, hp.init, keras)
        log(f"init: {n} layers from {hp.init}" + (f"; kept random: {', '.join(skipped)}" if skipped else ""))
    binary = spec.task == "binary"
    opt = make_optimizer(hp, int(np.ceil(len(tr) / hp.batch)), keras)
    if binary:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=hp.label_smoothing)
        y_tr, y_va = tr.labels.astype(np.float32), va.labels.astype(np.float32)
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing)
        k = spec.num_classes
        y_tr, y_va = np.eye(k, dtype=np.float32)[tr.labels], np.eye(k, dtype=np.float32)[va.labels]
    model.compile(
        optimizer=opt,
        loss=loss,
        metrics=["accuracy"] if not binary else [keras.metrics.BinaryAccuracy(name="accuracy")],
    )

    class_weight = None
    if hp.class_weights == "balanced":
        counts = np.bincount(tr.labels, minlength=spec.num_classes).astype(float)
        class_weight = {i: float(len(tr) / (spec.num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}

    train_ds = tf.data.Dataset.from_tensor_slices((tr.images, y_tr)).shuffle(
        len(tr), seed=hp.seed, reshuffle_each_iteration=True
    )
    train_ds = train_ds.batch(hp.batch).map(lambda x, y: (tf.cast(x, tf.float32), y))
    if hp.augment:
        train_ds = train_ds.map(_augment_fn(tf, spec.input_height, spec.input_width, hp.seed, hp.jitter))
    train_ds = train_ds.prefetch(2)
    val_ds = tf.data.Dataset.from_tensor_slices((va.images.astype(np.float32), y_va)).batch(256)

    ckpt = out / "model.keras"
    callbacks = [
        *ema_callbacks(hp, keras),
        keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_accuracy", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=hp.patience, restore_best_weights=True),
    ]
    fit = model.fit(train_ds, validation_data=val_ds, epochs=hp.epochs, class_weight=class_weight, shuffle=False,
                    callbacks=callbacks, verbose=verbose)
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    train_s = time.time() - t0

    model = load_best(keras, ckpt)  # save_artifacts re-saves it without the optimizer state: a third of the size
    probs = keras_probs(model, te.images, spec) if len(te) else np.zeros((0, spec.num_classes))
    val_probs = keras_probs(model, va.images, spec)
    report = classification_report(te.labels, probs, spec.labels) if len(te) else {}
    val_acc = float((val_probs.argmax(1) == va.labels).mean())
    chance = float(np.bincount(va.labels, minlength=spec.num_classes).max() / len(va))
    best_epoch = int(np.argmax(history["val_accuracy"])) + 1
    metrics = {
        "model": hp.model, "dataset": hp.dataset, "split": "test" if hp.folds is None else f"fold {hp.fold}/{hp.folds}",
        "val_accuracy": val_acc,
        "majority_class_val_accuracy": chance, "beats_chance": val_acc > chance + 0.05,
        "best_epoch": best_epoch, "epochs_run": len(history["loss"]), "train_seconds": round(train_s, 1),
        "params": int(model.count_params()), "hparams": asdict(hp), **report,
    }
    spec = spec.replace(
        metrics={k: metrics.get(k) for k in ("accuracy", "macro_f1", "auc_ovr", "val_accuracy", "n")}
        | {"split": metrics["split"]}
    )
    save_artifacts(out, model, spec, metrics, history, confusion=report["confusion"] if report else None)
    if not metrics["beats_chance"]:
        log(f"WARNING: val accuracy {val_acc:.3f} does not beat the majority class ({chance:.3f}) by 5 pt; "
            "do not convert or ship this model")
    log(
        f"done in {train_s:.0f}s: best epoch {best_epoch}, val acc {val_acc:.4f}, test acc "
        f"{report.get('accuracy', float('nan')):.4f}"
    )
    return metrics
