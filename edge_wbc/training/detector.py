"""Training of the multi-source WBC detector: a U-Net WBC map on smear fields at one canonical scale.

``edge-wbc train unet --dataset fields:bccd,smartphone_pig[,sigtuple]`` (plain ``fields``: the
shippable sources). Every field is first resampled to :data:`~edge_wbc.defaults.DETECTOR_UM_PER_PX`
with its red-cell *estimate* (:mod:`edge_wbc.tasks.fieldsets`), as ``edge-wbc count`` does at run time.
Each step draws a source-balanced batch of ``crop`` px crops (60 % around a WBC), with scale jitter
(x0.74-1.35), flips, 90° turns, resolution loss, blur, JPEG, noise, per-channel gain and gamma in NumPy
and colour jitter in TensorFlow.
Loss: cross-entropy + soft Dice of the WBC map (the shrunk box ellipses). The checkpoint with the
lowest loss on a fixed set of val crops is kept, then rebuilt at ``window`` px (the U-Net is fully
convolutional) for conversion: the runtime slides that window over the resampled field.

``--holdout SOURCE`` is the leave-one-source-out fold: trained without it; the test split of every
source, the held-out one included, is scored by ``benchmarks/count_eval.py`` on the converted model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.fields import parse_fields_dataset
from ..defaults import DETECTOR_DECODE, DETECTOR_TARGET_SHRINK, DETECTOR_UM_PER_PX
from ..errors import DataError
from ..spec import ModelSpec
from .artifacts import save_artifacts, save_keras
from .registry import build_model


def check_size(v: int, what: str) -> None:
    if v % 16:
        raise DataError(f"detector {what} {v} px must be divisible by 16 (the U-Net's depth 4)")


def behind_window(model, spec: ModelSpec, window: int):
    """The same weights behind a ``window`` px input (the U-Net is fully convolutional): (model, spec)."""
    wspec = spec.replace(input_height=window, input_width=window)
    new = build_model(spec.source_model, wspec, **dict(spec.model_kwargs or {}))
    new.set_weights(model.get_weights())
    return new, wspec


@dataclass
class DetectorHParams:
    dataset: str = "fields"
    model: str = "unet"
    holdout: str | None = None
    epochs: int = 30
    steps: int = 100
    batch: int = 16
    lr: float = 2e-3
    seed: int = 0
    crop: int = 128
    window: int = 256
    jitter: float = 1.0
    # stronger augmentation (default): per-channel gain and gamma, resolution loss, colour jitter x2. Chosen on
    # the held-out source's val split: smartphone_pig held out, val recall / precision 0.016 / 0.600 without,
    # 0.798 / 0.758 with it (BCCD val 0.977 / 0.944 -> 0.966 / 0.923)
    strong: bool = True
    patience: int = 30
    limit: int | None = None  # fields per source and split (smoke runs, tests)
    model_kwargs: dict = field(default_factory=dict)

    @property
    def sources(self) -> tuple[str, ...]:
        return parse_fields_dataset(self.dataset)

    @property
    def train_sources(self) -> tuple[str, ...]:
        return tuple(s for s in self.sources if s != self.holdout)

    def __post_init__(self):
        if self.holdout is not None and self.holdout not in self.sources:
            raise DataError(f"--holdout {self.holdout!r} is not a source of {self.dataset!r}: valid choices are "
                            f"{', '.join(self.sources)}")
        if len(self.train_sources) == 0:
            raise DataError(f"{self.dataset!r} without {self.holdout!r} leaves no source to train on")
        check_size(self.crop, "crop")
        check_size(self.window, "window")


def train_detector(hp: DetectorHParams, out_dir, data=None, verbose: int = 2, log=print) -> dict:
    from ..tasks.fieldsets import CropSampler, canonical_fields
    from .train import HParams, load_best, make_optimizer, photometric, setup

    keras, tf, out = setup(HParams(model=hp.model, seed=hp.seed), out_dir)
    t0 = time.time()
    fields = canonical_fields(hp.train_sources, data, log=log, limit=hp.limit, seed=hp.seed)
    tr = [f for f in fields if f.split == "train"]
    va = [f for f in fields if f.split == "val"]
    if not tr or not va:
        raise DataError(f"{hp.dataset}: no train ({len(tr)}) or val ({len(va)}) fields in {hp.train_sources}")
    log(f"data: {', '.join(hp.train_sources)}: train {len(tr)} / val {len(va)} fields at {DETECTOR_UM_PER_PX} "
        f"µm/px ({time.time() - t0:.1f}s)" + (f"; held out: {hp.holdout}" if hp.holdout else ""))
    # the dataset it was trained on is its train sources (a held-out source is not in it: calibration and
    # licences follow the spec's dataset)
    trained_on = "fields:" + ",".join(hp.train_sources)
    spec = ModelSpec("segmentation", hp.crop, hp.crop, ("wbc",), dataset=trained_on, source_model=hp.model,
                     model_kwargs=dict(hp.model_kwargs), split_seed=hp.seed)
    model = build_model(hp.model, spec, **hp.model_kwargs)

    def loss_fn(t, y):
        p = tf.clip_by_value(y, 1e-6, 1 - 1e-6)
        bce = -tf.reduce_mean(t * tf.math.log(p) + (1 - t) * tf.math.log(1 - p))
        inter = tf.reduce_sum(p * t, axis=[1, 2, 3])
        dice = (2 * inter + 1.0) / (tf.reduce_sum(p + t, axis=[1, 2, 3]) + 1.0)
        return bce + tf.reduce_mean(1 - dice)

    opt_hp = HParams(model=hp.model, epochs=hp.epochs, lr=hp.lr, seed=hp.seed)
    model.compile(optimizer=make_optimizer(opt_hp, hp.steps, keras), loss=loss_fn)
    sampler = CropSampler(tr, hp.crop, seed=hp.seed, strong=hp.strong)
    xv, yv = CropSampler(va, hp.crop, seed=hp.seed + 1).batch(max(64, 8 * len({f.source for f in va})) * 4)

    def gen():
        while True:
            yield sampler.batch(hp.batch)

    sig = (tf.TensorSpec((hp.batch, hp.crop, hp.crop, 3), tf.float32),
           tf.TensorSpec((hp.batch, hp.crop, hp.crop, 1), tf.float32))
    ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
    if hp.jitter:
        ds = ds.map(lambda x, y: (photometric(tf, x, hp.jitter * (2 if hp.strong else 1)), y))
    ckpt = out / "model.keras"
    fit = model.fit(ds.prefetch(2), steps_per_epoch=hp.steps, epochs=hp.epochs, validation_data=(xv, yv), shuffle=False,
                    verbose=verbose, callbacks=[
                        keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_loss", save_best_only=True),
                        keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp.patience,
                                                      restore_best_weights=True)])
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    best = load_best(keras, ckpt)
    final, wspec = behind_window(best, spec, hp.window)  # what the converters and the runtime get
    train_s = round(time.time() - t0, 1)
    metrics = {
        "model": hp.model, "dataset": hp.dataset, "train_sources": list(hp.train_sources), "holdout": hp.holdout,
        "train_seconds": train_s, "params": int(final.count_params()),
        "best_epoch": int(np.argmin(history["val_loss"])) + 1, "best_val_loss": float(min(history["val_loss"])),
        "train_fields": len(tr), "val_fields": len(va), "hparams": asdict(hp),
    }
    spec = wspec.replace(metrics={"um_per_px": DETECTOR_UM_PER_PX, "target_shrink": DETECTOR_TARGET_SHRINK,
                                  "detector": "fields", "decode": dict(DETECTOR_DECODE),
                                  "train_sources": list(hp.train_sources),
                                  "best_val_loss": metrics["best_val_loss"]})
    save_artifacts(out, final, spec, metrics, history)  # model.keras: over the crop-sized checkpoint
    log(f"done: best val loss {metrics['best_val_loss']:.4f} at epoch {metrics['best_epoch']} ({train_s:.0f} s)")
    return metrics


def rewindow(model_dir, window: int, out_dir=None) -> ModelSpec:
    """The detector of ``model_dir`` behind a ``window`` px input (the U-Net is fully convolutional; the
    weights are the same): ``model.keras`` and ``model.json`` rewritten in ``out_dir`` (default: in place).
    The window only changes how many windows a field takes (speed), not what the detector learned."""
    from pathlib import Path

    import keras

    from .train import load_best

    check_size(window, "window")
    src, out = Path(model_dir), Path(out_dir or model_dir)
    new, new_spec = behind_window(load_best(keras, src / "model.keras"), ModelSpec.load(src), window)
    out.mkdir(parents=True, exist_ok=True)
    save_keras(new, out / "model.keras")
    new_spec.save(out / "model.json")
    return new_spec
