"""Training entry point, driven by :class:`HParams`.

``train(HParams(model="wbcnet", dataset="bloodmnist"), out_dir)`` writes into ``out_dir``:
``model.keras`` (best val checkpoint), ``model.json`` (the ModelSpec), ``history.csv``,
``curves.png``, ``confusion.png`` and ``metrics.json`` (test accuracy, macro-F1, per-class
precision/recall, one-vs-rest AUC). It refuses to call a model done if it does not beat chance.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import Dataset, load_dataset
from ..data.catalog import default_size
from ..data.pack import is_pack
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
    # > size: load the train images at this size and shrink each batch to `size` with a filter drawn per
    # batch from RANDOM_RESIZE_FILTERS, so that the model holds up under any app's resize (val/test: the spec's)
    resize_from: int | None = None
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
    # scale-out (classifiers; docs/training-distributed.md): tf.distribute strategy, logical CPU devices for
    # `mirrored` without a GPU, resume from OUT/.backup, float16 compute on GPU, seconds to wait for the cluster,
    # shuffle buffer (records) when training from a pack
    strategy: str = "default"
    devices: int = 2
    resume: bool = False
    mixed_precision: bool = False
    connect_timeout: float = 120.0
    shuffle_buffer: int = 4096

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
        from .distributed import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise SpecError(f"invalid strategy {self.strategy!r}: valid choices are {', '.join(STRATEGIES)}")
        if self.devices < 1 or self.shuffle_buffer < 1 or self.connect_timeout <= 0:
            raise SpecError(f"devices, shuffle buffer and connect timeout must be > 0, got {self.devices}, "
                            f"{self.shuffle_buffer} and {self.connect_timeout}")
        if is_pack(self.dataset) and self.limit:
            raise SpecError(f"--limit does not apply to a pack ({self.dataset}); pack fewer images instead")
        if get_model(self.model).task != "segmentation":
            for flag, on in (("--boundary-weight", self.boundary_weight), ("--refit", self.refit)):
                if on:
                    raise SpecError(f"{flag} is for segmentation models; {self.model!r} is a classifier")
        elif self.folds is not None:
            raise SpecError(f"--folds is for classifiers on a folder tree; {self.model!r} is a segmentation model")
        elif self.strategy != "default" or self.resume or self.mixed_precision or is_pack(self.dataset):
            raise SpecError(f"--strategy, --resume, --mixed-precision and packs are for classifiers; {self.model!r} "
                            "is a segmentation model")
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
        if self.resize_from is not None:
            size = make_spec(self, ("a", "b")).input_height
            if self.resize_from <= size:
                raise SpecError(f"--resize-from {self.resize_from} must be larger than the input size {size}")
            if is_pack(self.dataset) or get_model(self.model).task == "segmentation":
                raise SpecError("--resize-from is for classifiers trained from an image dataset, not a pack or a "
                                "segmentation model")
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


#: What ``resize_from`` draws from, per batch: (tf.image.resize method, antialias). Pillow's bicubic and
#: area (BOX) filters average when they shrink (antialias); OpenCV's and MediaPipe's bilinear and a
#: nearest-neighbour resize sample without averaging.
RANDOM_RESIZE_FILTERS = (("bicubic", True), ("bilinear", False), ("area", False), ("nearest", False))


def random_resize_fn(tf, size_h, size_w):
    """Batch (N, H, W, C) float 0..255 at a larger size -> (N, size_h, size_w, C), one filter per batch."""
    def branch(method, antialias):
        return lambda x: tf.clip_by_value(tf.image.resize(x, [size_h, size_w], method=method, antialias=antialias),
                                          0.0, 255.0)

    def resize(x, y):
        k = tf.random.uniform([], 0, len(RANDOM_RESIZE_FILTERS), dtype=tf.int32)
        fns = [(lambda f=branch(m, a): f(x)) for m, a in RANDOM_RESIZE_FILTERS]
        return tf.switch_case(k, fns), y

    return resize


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


@dataclass
class Inputs:
    """What :func:`train` feeds ``fit`` and evaluates on: in-memory arrays or a streamed pack."""

    spec: ModelSpec
    train_ds: object
    val_ds: object
    steps_per_epoch: int | None
    n: dict  # images per split
    train_counts: np.ndarray  # per class
    evaluate: Callable  # (model, split) -> (probs, labels)
    pack: object = None


def array_inputs(hp: HParams, tf, ctx, data=None, log=print) -> Inputs:
    """Load the dataset into memory (the loaders) and feed it through ``from_tensor_slices``."""
    t0 = time.time()
    spec, ds = load_for_training(hp, data)
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    train_images = tr.images
    if hp.resize_from:  # the train split again, at the larger size; the same images in the same order
        _, big = load_for_training(replace(hp, size=hp.resize_from, resize_from=None), data)
        btr = big.split("train")
        if btr.ids != tr.ids:
            raise DataError(f"{hp.dataset}: the train split at {hp.resize_from} px is not the one at "
                            f"{spec.input_height} px")
        train_images = btr.images
        log(f"data: train images at {hp.resize_from}px, shrunk per batch with a random filter "
            f"({', '.join(m for m, _ in RANDOM_RESIZE_FILTERS)})")
    if len(tr) == 0 or len(va) == 0:
        raise DataError(f"{hp.dataset}: train ({len(tr)}) and val ({len(va)}) must not be empty")
    log(f"data: {hp.dataset} train {len(tr)} val {len(va)} test {len(te)} at {spec.input_height}px, "
        f"{len(spec.labels)} classes ({time.time() - t0:.1f}s)")
    if spec.task == "binary":
        y_tr, y_va = tr.labels.astype(np.float32), va.labels.astype(np.float32)
    else:
        k = spec.num_classes
        y_tr, y_va = np.eye(k, dtype=np.float32)[tr.labels], np.eye(k, dtype=np.float32)[va.labels]
    train_ds = tf.data.Dataset.from_tensor_slices((train_images, y_tr)).shuffle(
        len(tr), seed=hp.seed, reshuffle_each_iteration=True
    )
    train_ds = train_ds.batch(hp.batch).map(lambda x, y: (tf.cast(x, tf.float32), y))
    if hp.resize_from:
        train_ds = train_ds.map(random_resize_fn(tf, spec.input_height, spec.input_width))
    if hp.augment:
        train_ds = train_ds.map(_augment_fn(tf, spec.input_height, spec.input_width, hp.seed, hp.jitter))
    train_ds = train_ds.prefetch(2)
    val_ds = tf.data.Dataset.from_tensor_slices((va.images.astype(np.float32), y_va)).batch(256)
    if ctx.num_workers > 1:  # every worker holds the same seeded arrays and keeps its share of each batch
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
    splits = {"train": tr, "val": va, "test": te}

    def evaluate(model, split):
        sp = splits[split]
        probs = keras_probs(model, sp.images, spec) if len(sp) else np.zeros((0, spec.num_classes))
        return probs, sp.labels

    return Inputs(spec, train_ds, val_ds, None, {k: len(v) for k, v in splits.items()},
                  np.bincount(tr.labels, minlength=spec.num_classes).astype(float), evaluate)


def pack_inputs(hp: HParams, tf, ctx, log=print) -> Inputs:
    """Stream a pack (``--dataset PACK_DIR``) through tf.data (:mod:`edge_wbc.training.streaming`)."""
    from .streaming import eval_dataset as stream
    from .streaming import open_pack, predict_split, train_dataset

    t0 = time.time()
    pack = open_pack(hp.dataset)  # checks every shard's sha256
    if hp.size and hp.size != pack.size:
        raise SpecError(f"--size {hp.size}: the pack {hp.dataset} holds {pack.size} px images; re-pack with "
                        f"--size {hp.size}")
    spec = make_spec(replace(hp, size=pack.size), pack.labels)
    n = {s: pack.n(s) for s in ("train", "val", "test")}
    if not n["train"] or not n["val"]:
        raise DataError(f"{hp.dataset}: train ({n['train']}) and val ({n['val']}) must not be empty")
    k = 1 if spec.task == "binary" else spec.num_classes
    aug = _augment_fn(tf, spec.input_height, spec.input_width, hp.seed, hp.jitter) if hp.augment else None
    train_ds = train_dataset(tf, pack, hp, ctx.rank, ctx.num_workers, k, aug)
    log(f"data: pack {hp.dataset} ({', '.join(pack.sources)}) train {n['train']} val {n['val']} test {n['test']} "
        f"at {pack.size}px, {len(spec.labels)} classes, {len(pack.files('train'))} train shards "
        f"(sha256 checked in {time.time() - t0:.1f}s)")
    return Inputs(spec, train_ds, stream(tf, pack, "val", k), int(np.ceil(n["train"] / hp.batch)), n,
                  pack.counts("train"), lambda model, split: predict_split(tf, model, pack, split, spec), pack)


def float32_copy(model, hp: HParams, spec: ModelSpec, keras):
    """The same architecture and weights under the float32 policy (what the converters get)."""
    if keras.mixed_precision.global_policy().name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    clean = build_model(hp.model, spec, **hp.model_kwargs)
    clean.set_weights(model.get_weights())
    return clean


def train(hp: HParams, out_dir: str | Path, data=None, verbose: int = 2, log=print) -> dict:
    from .checkpoint import backup_callback, prepare_backup, remove_backup
    from .distributed import global_batch_dropout, make_context, patch_keras_multiworker, sync_batchnorm

    ctx = make_context(hp, log)  # devices and strategy first: TensorFlow must not have run an op yet
    keras, tf, work = setup(hp, ctx.work_dir(Path(out_dir)), deterministic=True)
    if not ctx.is_chief:
        log = lambda s: None  # noqa: E731  (the chief reports; the others stay quiet)
    t0 = time.time()
    backup_dir, done = prepare_backup(hp, work, log)  # refuse a foreign or forgotten checkpoint before loading
    inputs = pack_inputs(hp, tf, ctx, log) if is_pack(hp.dataset) else array_inputs(hp, tf, ctx, data, log)
    spec = inputs.spec
    if ctx.name != "default":
        log(f"strategy: {ctx.name}, {ctx.num_workers} worker(s), {ctx.replicas} replica(s), global batch "
            f"{hp.batch} ({hp.batch / ctx.replicas:g} per replica)")

    with ctx.strategy.scope():
        model = build_model(hp.model, spec, **hp.model_kwargs)
        n_sync_bn = sync_batchnorm(model, ctx.replicas)
        n_dropout = global_batch_dropout(model, ctx.replicas)
        if hp.init:
            n, skipped = init_from(model, hp.init, keras)
            log(f"init: {n} layers from {hp.init}" + (f"; kept random: {', '.join(skipped)}" if skipped else ""))
        binary = spec.task == "binary"
        opt = make_optimizer(hp, inputs.steps_per_epoch or int(np.ceil(inputs.n["train"] / hp.batch)), keras)
        if binary:
            loss = keras.losses.BinaryCrossentropy(label_smoothing=hp.label_smoothing)
        else:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing)
        model.compile(
            optimizer=opt,
            loss=loss,
            metrics=["accuracy"] if not binary else [keras.metrics.BinaryAccuracy(name="accuracy")],
        )
    patch_keras_multiworker(model, ctx.strategy)

    class_weight = None
    if hp.class_weights == "balanced":
        counts = inputs.train_counts
        class_weight = {i: float(counts.sum() / (spec.num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}

    ckpt = work / "model.keras"
    backup = backup_callback(keras, backup_dir)
    callbacks = [
        *ema_callbacks(hp, keras),
        backup,
        keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_accuracy", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=hp.patience, restore_best_weights=True),
    ]
    try:
        model.fit(inputs.train_ds, validation_data=inputs.val_ds, epochs=hp.epochs, class_weight=class_weight,
                  steps_per_epoch=inputs.steps_per_epoch, shuffle=False, callbacks=callbacks,
                  verbose=verbose if ctx.is_chief else 0)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        if inputs.pack is None:
            raise
        from .streaming import find_bad_shard

        bad = find_bad_shard(tf, inputs.pack)
        if bad is None:
            raise
        raise DataError(f"{bad[0]}: bad record ({bad[1]}); training stopped") from e
    history = {k: [float(v) for v in vals] for k, vals in backup.history.items()}
    train_s = time.time() - t0
    remove_backup(backup_dir)
    if not ctx.is_chief:  # only the chief writes artifacts; a worker's scratch folder goes
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        return {"worker": ctx.rank, "epochs_run": len(history.get("loss", []))}

    model = load_best(keras, ckpt)  # save_artifacts re-saves it without the optimizer state: a third of the size
    model = float32_copy(model, hp, spec, keras)
    probs, y_te = inputs.evaluate(model, "test")
    val_probs, y_va = inputs.evaluate(model, "val")
    report = classification_report(y_te, probs, spec.labels) if len(y_te) else {}
    val_acc = float((val_probs.argmax(1) == y_va).mean())
    chance = float(np.bincount(y_va, minlength=spec.num_classes).max() / len(y_va))
    best_epoch = int(np.argmax(history["val_accuracy"])) + 1
    steady = history["epoch_seconds"][1:] or history["epoch_seconds"]
    steps = inputs.steps_per_epoch or int(np.ceil(inputs.n["train"] / hp.batch))
    dist = ctx.describe(hp.batch) | {
        "resumed_after_epoch": done, "steps_per_epoch": steps,
        "epoch_seconds": [round(v, 2) for v in history["epoch_seconds"]],
        "step_ms": round(1000 * float(np.median(steady)) / steps, 2),
        "rss_mb": [round(v, 1) for v in history["rss_mb"]],
        "input": "pack (tf.data stream)" if inputs.pack is not None else "arrays in memory",
        "sync_batchnorm_layers": n_sync_bn,
        "global_batch_dropout_layers": n_dropout,
    }
    metrics = {
        "model": hp.model, "dataset": hp.dataset, "split": "test" if hp.folds is None else f"fold {hp.fold}/{hp.folds}",
        "val_accuracy": val_acc,
        "majority_class_val_accuracy": chance, "beats_chance": val_acc > chance + 0.05,
        "best_epoch": best_epoch, "epochs_run": len(history["loss"]), "train_seconds": round(train_s, 1),
        "params": int(model.count_params()), "strategy": ctx.name, "workers": ctx.num_workers,
        "distributed": dist, "hparams": asdict(hp), **report,
    }
    spec = spec.replace(
        metrics={k: metrics.get(k) for k in ("accuracy", "macro_f1", "auc_ovr", "val_accuracy", "n")}
        | {"split": metrics["split"]}
    )
    save_artifacts(work, model, spec, metrics, history, confusion=report["confusion"] if report else None)
    if not metrics["beats_chance"]:
        log(f"WARNING: val accuracy {val_acc:.3f} does not beat the majority class ({chance:.3f}) by 5 pt; "
            "do not convert or ship this model")
    log(
        f"done in {train_s:.0f}s: best epoch {best_epoch}, val acc {val_acc:.4f}, test acc "
        f"{report.get('accuracy', float('nan')):.4f}"
    )
    return metrics
