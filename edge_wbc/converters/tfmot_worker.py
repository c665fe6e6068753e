"""QAT, pruning and clustering with tensorflow-model-optimization, in a tf_keras subprocess.

tfmot 0.8.1 accepts only tf_keras (Keras 2) models, and ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is imported, so this runs as ``python -m edge_wbc.converters.tfmot_worker job.json``
(see :func:`edge_wbc.converters.modes.run_tfmot`). The job names the registered architecture
(``spec.source_model``) and a ``.npz`` of the Keras 3 model's weights; the architecture is rebuilt
with the registry builder in tf_keras, the weights copied in layer order, the tfmot wrapper applied,
fine-tuned on the train split (augmented), stripped, and converted to full-integer TFLite.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _setup():
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    return tf, tf_keras, tfmot


def rebuild(spec, weights_npz: str, tf_keras):
    import numpy as np

    from ..training import build_model

    model = build_model(spec.source_model, spec, K=tf_keras, **spec.model_kwargs)
    with np.load(weights_npz, allow_pickle=False) as z:
        weights = [z[f"arr_{i}"] for i in range(len(z.files))]
    mine = model.get_weights()
    if len(mine) != len(weights) or any(a.shape != b.shape for a, b in zip(mine, weights)):
        raise RuntimeError(f"tf_keras rebuild of {spec.source_model!r} does not match the Keras 3 weights "
                           f"({len(mine)} vs {len(weights)} arrays)")
    model.set_weights(weights)
    return model


def _rescaling_config(tfmot, tf_keras):
    """Rescaling (the in-graph normalization) is not in tfmot's registry: quantize its output only."""
    Q = tfmot.quantization.keras

    class RescalingQuantizeConfig(Q.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [
                Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
            ]

        def get_config(self):
            return {}

    return RescalingQuantizeConfig


def apply_qat(model, tfmot, tf_keras):
    Q = tfmot.quantization.keras
    cfg_cls = _rescaling_config(tfmot, tf_keras)
    blocked = []

    def annotate(layer):
        if isinstance(layer, tf_keras.layers.Rescaling):
            return Q.quantize_annotate_layer(layer, quantize_config=cfg_cls())
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        return Q.quantize_annotate_layer(layer)

    # clone_function wraps the original layer objects, so the float weights carry over
    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    with Q.quantize_scope({"RescalingQuantizeConfig": cfg_cls}):
        try:
            return Q.quantize_apply(annotated), blocked
        except RuntimeError as e:  # names the unsupported layer
            raise RuntimeError(f"QAT is blocked by a layer tfmot cannot quantize: {e}") from None


def apply_pruning(model, tfmot, tf_keras, sparsity: float, steps: int):
    S = tfmot.sparsity.keras
    schedule = S.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                 end_step=max(1, int(steps * 0.7)), frequency=max(1, steps // 20))

    def wrap(layer):
        if isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)) and not isinstance(
            layer, tf_keras.layers.DepthwiseConv2D
        ):
            return S.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    return tf_keras.models.clone_model(model, clone_function=wrap)


def apply_clustering(model, tfmot, tf_keras, clusters: int, preserve_sparsity: bool = False):
    C = tfmot.clustering.keras
    kinds = (tf_keras.layers.Conv2D, tf_keras.layers.Dense) if preserve_sparsity else (
        tf_keras.layers.Conv2D, tf_keras.layers.Dense, tf_keras.layers.DepthwiseConv2D)

    def wrap(layer):
        if isinstance(layer, kinds) and not (preserve_sparsity and isinstance(layer, tf_keras.layers.DepthwiseConv2D)):
            # preserve_sparsity: zeros from pruning stay zeros (sparsity-preserving clustering)
            return C.cluster_weights(layer, number_of_clusters=clusters, preserve_sparsity=preserve_sparsity,
                                     cluster_centroids_init=C.CentroidInitialization.KMEANS_PLUS_PLUS)
        return layer

    return tf_keras.models.clone_model(model, clone_function=wrap)


def freeze_batchnorm(model, tf_keras) -> int:
    """BatchNorm layers use (and keep) their moving statistics during QAT fine-tuning.

    In tf_keras a non-trainable BatchNormalization runs in inference mode, so the fake-quantized
    graph that is trained is the one that is converted (BN folded with the float model's statistics),
    instead of batch statistics of small augmented batches drifting away from them.
    """
    n = 0
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
            n += 1
    return n


def best_on_val(tf_keras, x_val, y_val):
    """Callback that keeps the weights (fake-quant ranges included) of the epoch with the best val accuracy."""

    class BestOnVal(tf_keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.best_weights, self.history = -1.0, 0, None, []

        def on_epoch_end(self, epoch, logs=None):
            acc = float(self.model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)["accuracy"])
            self.history.append(
                {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))), "val_accuracy": acc}
            )
            if acc > self.best:  # ties keep the earlier epoch (closer to the float weights)
                self.best, self.best_epoch, self.best_weights = acc, epoch + 1, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return BestOnVal()


def finetune(model, spec, job, tf, tf_keras, callbacks=(), select_on_val=False):
    import numpy as np

    from ..data import load_dataset
    from ..training.train import _augment_fn

    ds = load_dataset(spec.dataset, spec, data=job.get("data"), seed=spec.split_seed)  # the training split
    tr = ds.split("train")
    n = job.get("limit") or len(tr)
    idx = np.random.default_rng(job.get("seed", 0)).permutation(len(tr))[:n]
    x, y = tr.images[idx], tr.labels[idx]
    binary = spec.task == "binary"
    yt = y.astype("float32") if binary else np.eye(spec.num_classes, dtype="float32")[y]
    d = tf.data.Dataset.from_tensor_slices((x, yt)).shuffle(len(x), seed=job.get("seed", 0)).batch(job.get("batch", 64))
    d = (
        d.map(lambda a, b: (tf.cast(a, tf.float32), b))
        .map(_augment_fn(tf, spec.input_height, spec.input_width, 0))
        .prefetch(2)
    )
    loss = tf_keras.losses.BinaryCrossentropy() if binary else tf_keras.losses.CategoricalCrossentropy()
    metric = tf_keras.metrics.BinaryAccuracy(name="accuracy") if binary else "accuracy"
    model.compile(optimizer=tf_keras.optimizers.Adam(job.get("lr", 1e-4)), loss=loss, metrics=[metric])
    callbacks = list(callbacks)
    best = None
    if select_on_val:
        va = ds.split("val")
        yv = va.labels.astype("float32") if binary else np.eye(spec.num_classes, dtype="float32")[va.labels]
        best = best_on_val(tf_keras, va.images.astype("float32"), yv)
        callbacks.append(best)
    model.fit(d, epochs=job.get("epochs", 2), verbose=0, callbacks=callbacks)
    log = {"epochs": job.get("epochs", 2), "lr": job.get("lr", 1e-4)}
    if best is not None:
        log.update(selected_epoch=best.best_epoch, selected_val_accuracy=best.best, history=best.history)
    return x, log


def to_int8(model, tf, calib=None, io="uint8"):

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if calib is not None:
        from .modes import pin_pixel_range

        calib = pin_pixel_range(calib)
        conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float32":
        conv.inference_input_type = getattr(tf, io)
        conv.inference_output_type = getattr(tf, io)
    return conv.convert()


def run(job: dict) -> tuple[bytes, dict]:
    tf, tf_keras, tfmot = _setup()

    from ..spec import ModelSpec

    tf_keras.utils.set_random_seed(job.get("seed", 0))
    spec = ModelSpec.from_dict(job["spec"])
    model = rebuild(spec, job["weights"], tf_keras)
    mode = job["mode"]
    n_calib = job.get("calib", 500)
    if mode == "qat":
        frozen = freeze_batchnorm(model, tf_keras)
        qm, _ = apply_qat(model, tfmot, tf_keras)
        x, log = finetune(qm, spec, job, tf, tf_keras, select_on_val=True)
        log["frozen_batchnorm_layers"] = frozen
        # the QAT fake-quant ranges fix the quantization; the converter still wants a few samples
        # for any tensor without a learned range (it refuses full-integer conversion otherwise)
        return to_int8(qm, tf, x[:n_calib], job.get("io", "uint8")), log
    if mode == "pruned":
        import math

        from ..data import load_dataset

        n = job.get("limit") or len(
            load_dataset(spec.dataset, spec, data=job.get("data"), seed=spec.split_seed).split("train")
        )
        steps = job.get("epochs", 2) * math.ceil(n / job.get("batch", 64))
        pm = apply_pruning(model, tfmot, tf_keras, job.get("sparsity", 0.5), steps)
        x, log = finetune(pm, spec, job, tf, tf_keras, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(pm)
        if job.get("prune_clusters"):  # then sparsity-preserving clustering of the surviving weights
            cm = apply_clustering(stripped, tfmot, tf_keras, job["prune_clusters"], preserve_sparsity=True)
            finetune(cm, spec, dict(job, epochs=1), tf, tf_keras)
            stripped = tfmot.clustering.keras.strip_clustering(cm)
        return to_int8(stripped, tf, x[:n_calib], job.get("io", "uint8")), log
    if mode == "clustered":
        cm = apply_clustering(model, tfmot, tf_keras, job.get("clusters", 16))
        x, log = finetune(cm, spec, job, tf, tf_keras)
        stripped = tfmot.clustering.keras.strip_clustering(cm)
        return to_int8(stripped, tf, x[:n_calib], job.get("io", "uint8")), log
    raise ValueError(f"unknown tfmot mode {mode!r}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    try:
        content, log = run(job)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        Path(job["out"] + ".error").write_text(f"{type(e).__name__}: {first}")
        return 1
    Path(job["out"] + ".log.json").write_text(json.dumps(log))
    Path(job["out"]).write_bytes(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
