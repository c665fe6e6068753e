"""convert_model_dir: load, convert by mode, verify, then write (never a silent broken file)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

from ..data import Dataset, load_dataset
from ..errors import DataError, ModelError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..runtime import TFLiteClassifier, TFLiteSegmenter, interpreter_backend
from ..runtime.probs import keras_probs
from ..spec import ModelSpec
from .modes import ConversionError, convert_keras, default_keep_float, mode_info, resolve_options

BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


def inspect_tflite(content: bytes) -> dict:
    """Tensor types, op list and the ops that compute in float, read through the interpreter."""
    Interp, backend, version = interpreter_backend()
    try:  # without the default XNNPACK delegate, so every op of the graph is visible as itself
        mod = __import__(Interp.__module__, fromlist=["OpResolverType"])
        it = Interp(
            model_content=content, experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    except (AttributeError, TypeError):
        it = Interp(model_content=content)
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ins, outs = it.get_input_details(), it.get_output_details()
    io_idx = {d["index"] for d in ins} | {d["index"] for d in outs}
    ops = it._get_ops_details()  # public in all three interpreters' Python wrappers, underscore-named
    per_channel = [t["name"] for t in tensors.values()
                   if len(t.get("quantization_parameters", {}).get("scales", ())) > 1]
    float_ops, names = [], []
    for op in ops:
        name = op["op_name"]
        names.append(name)
        idx = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in tensors]
        dtypes = {np.dtype(tensors[i]["dtype"]).name for i in idx}
        if name in BOUNDARY_OPS and any(i in io_idx for i in idx):
            continue
        if "float32" in dtypes:
            float_ops.append(f"{name}#{op['index']}")
    return {
        "input_dtype": np.dtype(ins[0]["dtype"]).name,
        "output_dtype": np.dtype(outs[0]["dtype"]).name,
        "input_quantization": [float(v) for v in ins[0]["quantization"]],
        "output_quantization": [float(v) for v in outs[0]["quantization"]],
        "ops": names,
        "float_ops": float_ops,
        "per_channel_tensors": per_channel,
        "size_bytes": len(content),
        "interpreter": f"{backend} {version}",
    }


def clipped_activations(content: bytes, spec: ModelSpec, images: np.ndarray) -> dict:
    """Share of int8 activation values stuck at the top of their range (clipped by calibration).

    Runs the integer model with all intermediate tensors kept, on real val images, and counts, for
    every quantized activation tensor (not weights, not the re-quantized input pixels, not softmax
    or sigmoid outputs), the values equal to the integer maximum (and to the minimum where the zero
    point is not at the minimum, i.e. the range is two-sided). ReLU6 outputs that reach 6 count as
    clipped too, so the figure is an upper bound.
    """
    Interp, _, _ = interpreter_backend()
    try:
        it = Interp(model_content=content, experimental_preserve_all_tensors=True)
    except TypeError:
        return {}
    it.allocate_tensors()
    ins = it.get_input_details()[0]
    clf_scale, clf_zp = ins["quantization"]
    details = it.get_tensor_details()
    consts = {d["index"] for d in it.get_output_details()}
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            consts.update(i for i in list(op["inputs"])[1:] if i >= 0)
        if op["op_name"] in ("QUANTIZE", "SOFTMAX", "LOGISTIC"):
            # re-quantized raw pixels (255 is the top of the range by design) and bounded outputs
            consts.update(i for i in op["outputs"] if i >= 0)
    acts = [t for t in details if np.dtype(t["dtype"]) in (np.int8, np.uint8) and t["index"] not in consts
            and t["index"] != ins["index"] and len(t["shape"]) >= 2]
    clipped = total = 0
    worst: dict[str, float] = {}
    for img in images:
        x = img[None]
        if np.dtype(ins["dtype"]) != np.uint8 or clf_scale != 1.0 or clf_zp != 0:
            info = np.iinfo(ins["dtype"])
            x = np.clip(np.round(x / clf_scale + clf_zp), info.min, info.max).astype(ins["dtype"])
        it.set_tensor(ins["index"], x)
        it.invoke()
        for t in acts:
            try:
                v = it.get_tensor(t["index"])
            except ValueError:
                continue
            info = np.iinfo(v.dtype)
            zp = t["quantization"][1]
            hit = int((v == info.max).sum()) + (int((v == info.min).sum()) if zp != info.min else 0)
            clipped += hit
            total += v.size
            worst[t["name"]] = worst.get(t["name"], 0) + hit / v.size / len(images)
    if not total:
        return {}
    top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    return {"clipped_share": clipped / total, "clipped_top": [[k, v] for k, v in top], "clipped_images": len(images)}


def load_keras(model_dir: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    path = model_dir / "model.keras"
    if not path.is_file():
        raise ModelError(f"{path}: not found (train a model first: edge-wbc train MODEL --out {model_dir})")
    try:
        from ..keras_objects import custom_objects
        return keras.saving.load_model(path, safe_mode=True, compile=False, custom_objects=custom_objects())
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{path}: cannot load the Keras model safely ({first})") from None


def with_features(model, features_first: bool = False):
    """The classifier with a second output: the tensor its last layer (the Dense head) reads.

    Outputs are ``[probs, features]`` (or ``[features, probs]``: the TFLite converter may list a list's
    outputs in either order, and :func:`convert_with_features` wants the probabilities first)."""
    import keras

    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise ConversionError(f"--ood needs a model that ends in a Dense layer; {model.name} ends in "
                              f"{type(head).__name__} {head.name!r}")
    outs = [head.input, model.outputs[0]] if features_first else [model.outputs[0], head.input]
    return keras.Model(model.inputs, outs, name=f"{model.name}_features")


def _output_widths(content: bytes) -> list[int]:
    Interp, _, _ = interpreter_backend()
    return [int(o["shape"][-1]) for o in Interp(model_content=content).get_output_details()]


def convert_with_features(model, spec: ModelSpec, mode: str, calib_images, **options) -> bytes:
    """The converted classifier with its features as the SECOND output, the probabilities first.

    MediaPipe's ImageClassifier reads every output as a classification head, in order: with the
    probabilities first, its first head (what apps read) is the class head, as without the features.
    """
    for features_first in (False, True):
        content = convert_keras(with_features(model, features_first), spec, mode, calib_images=calib_images,
                                **options)
        widths = _output_widths(content)
        if widths[0] == spec.num_classes:
            return content
    raise ConversionError(f"{mode}: the converter puts the features output first in either order "
                          f"(output widths {widths}); nothing written")


def _classifier(content: bytes, spec: ModelSpec, tmp: Path) -> TFLiteClassifier:
    """A TFLiteClassifier of converted bytes (through a temporary file, removed at once)."""
    tmp.write_bytes(content)
    try:
        return TFLiteClassifier(tmp, spec=spec)
    finally:
        tmp.unlink(missing_ok=True)


def calibration_images(ds: Dataset, n: int, seed: int = 0, split: str = "train") -> np.ndarray:
    if split == "test":
        raise ConversionError("calibration on the test split is refused: use train (default) or val")
    sp = ds.split(split)
    idx = np.random.default_rng(seed).permutation(len(sp))[:n]
    return sp.images[np.sort(idx)]


def _tflite_predict(cls, content: bytes, spec: ModelSpec, images: np.ndarray, tmp: Path) -> np.ndarray:
    """Run not-yet-written model bytes through the runtime class (via a hidden temp file)."""
    try:
        atomic_write_bytes(tmp, content)
        return cls(tmp, spec=spec).predict(images)
    finally:
        tmp.unlink(missing_ok=True)


def verify(content: bytes, mode: str, options: dict) -> dict:
    """Tensor types and ops of the converted model, checked against what its mode (with ``options``) promises."""
    m = mode_info(mode)
    options = resolve_options(mode, {k: v for k, v in options.items() if m.option(k)})
    try:
        info = inspect_tflite(content)
    except Exception as e:
        raise ConversionError(f"{mode}: the interpreter cannot load the converted model ({e})") from None
    want = m.io or options["io"]
    if (info["input_dtype"], info["output_dtype"]) != (want, want):
        raise ConversionError(
            f"{mode}: input/output are {info['input_dtype']}/{info['output_dtype']}, the mode promises {want}"
        )
    if m.integer and info["float_ops"]:
        if not options.get("allow_float_fallback") and options.get("keep_float") in (None, "none"):
            raise ConversionError(f"{mode}: float ops remain in the integer model: {', '.join(info['float_ops'])} "
                                  "(pass --allow-float-fallback to accept them)")
    return info


def _qat_vs_ptq(model, spec: ModelSpec, qat_content: bytes, ds: Dataset, options: dict, calib: int, seed: int,
                model_dir: Path, log) -> dict:
    """Val accuracy of the QAT model and of plain PTQ int8 of the same float model (the guard's inputs)."""
    val = ds.split("val")
    ptq = convert_keras(model, spec, "int8", calib_images=calibration_images(ds, calib, seed, "train"),
                        **{k: options[k] for k in ("io", "per_tensor", "allow_float_fallback")})
    accs = {}
    for name, mode, content in (("qat", "qat", qat_content), ("ptq", "int8", ptq)):
        p = _tflite_predict(
            TFLiteClassifier, content, spec.replace(quantization=mode), val.images, model_dir / f".{name}.cmp.tflite"
        )
        accs[f"{name}_val_accuracy"] = float((p.argmax(1) == val.labels).mean())
    log(
        f"qat: val accuracy {accs['qat_val_accuracy']:.4f} vs PTQ int8 {accs['ptq_val_accuracy']:.4f} "
        f"({len(val)} val images)"
    )
    return {**accs, "val_n": len(val)}


def _report_options(options: dict, internal: dict) -> dict:
    """The options as report.json has always listed them: io, per_tensor and allow_float_fallback for every
    mode (a mode without them shows their old defaults), then the mode's other options that have a value,
    then seed and calib of the tfmot modes."""
    out = {"io": options.get("io", "uint8"), "per_tensor": options.get("per_tensor", False),
           "allow_float_fallback": options.get("allow_float_fallback", False)}
    out.update({k: v for k, v in options.items() if k not in out and k != "allow_below_ptq" and v is not None})
    out.update({k: v for k, v in internal.items() if k in ("seed", "calib")})
    return out


def convert_model_dir(model_dir: str | Path, mode: str, data=None, calib: int = 500, calib_split: str = "train",
                      min_agreement: float = 0.9, agreement_n: int = 200, allow_chance: bool = False,
                      out_name: str | None = None, seed: int = 0, log=print, override: Dataset | None = None,
                      ood: bool = False, **mode_options) -> dict:
    """Convert ``model_dir/model.keras`` to ``model_dir/<mode>.tflite`` (+ ``<mode>.json``) and check it.

    ``override`` replaces the dataset the spec names (calibration and agreement images), e.g. the
    training sources' crops of a leave-one-source-out fold. ``mode_options`` are the mode's own
    options (see :data:`edge_wbc.converters.modes.MODE_TABLE`); one that does not apply to ``mode``
    is a :class:`ConversionError` naming the modes it applies to.

    ``ood``: a classifier gets a second output, its penultimate features, and ``metrics.ood`` in the
    written JSON: the Mahalanobis statistics of those features (:mod:`edge_wbc.tasks.ood`), fitted on
    the converted file's own features (train split; threshold on val).
    """
    model_dir = Path(model_dir)
    m = mode_info(mode)
    options = resolve_options(mode, mode_options)  # before anything is loaded: a bad option costs nothing
    spec = ModelSpec.load(model_dir)
    metrics_path = model_dir / "metrics.json"
    if metrics_path.is_file() and not allow_chance:
        mt = json.loads(metrics_path.read_text())
        if mt.get("beats_chance") is False:
            raise ConversionError(
                f"{model_dir}: val accuracy {mt.get('val_accuracy'):.3f} does not beat the majority class "
                f"({mt.get('majority_class_val_accuracy'):.3f}); refusing to convert (--allow-chance to override)"
            )
    split_seed = spec.split_seed  # the split the model was trained on; ``seed`` only draws samples
    if ood and spec.task == "segmentation":
        raise ConversionError(f"--ood is for classifiers; {model_dir} is a segmentation model")
    if ood and m.tfmot:
        raise ConversionError(f"--ood is not available with --mode {mode} (tfmot rebuilds the graph); "
                              "use float32, float16, dynamic, int8 or int16x8")
    model = load_keras(model_dir)
    if m.option("keep_float") and options.get("keep_float") is None:  # the layers that ask to stay in float
        options["keep_float"] = default_keep_float(model)
        if options["keep_float"]:
            log(f"{mode}: keeping {options['keep_float']} in float (its class asks for it; --keep-float none "
                "quantizes it too)")
    # the dataset is read once, on first use (calibration, agreement, the QAT guard)
    loaded: list[Dataset] = [] if override is None else [override]

    def dataset() -> Dataset:  # ``override``, or the spec's dataset on first use
        from ..data.fields import is_fields_dataset

        if not loaded and spec.crop == "wbc":  # a field model: the WBC-centred crops of its sources
            from ..tasks.cellsets import load_for_spec

            loaded.append(load_for_spec(spec.dataset, spec, data=data, seed=split_seed))
        elif not loaded and is_fields_dataset(spec.dataset):  # the field detector: fields at its scale
            from ..tasks.fieldsets import load_for_spec as fields_for_spec

            loaded.append(fields_for_spec(spec.dataset, spec, data=data, seed=split_seed))
        elif not loaded:
            loaded.append(load_dataset(spec.dataset, spec, data=data, seed=split_seed))
        return loaded[0]

    calib_imgs = None
    if m.calibrated:
        calib_imgs = calibration_images(dataset(), calib, seed, calib_split)
        log(f"calibrating on {len(calib_imgs)} {calib_split} images")
    internal: dict = {}
    fit_log: dict = {}
    if m.tfmot:
        log(f"{mode}: fine-tuning in a tf_keras subprocess (tensorflow-model-optimization)")
        internal = {"data": str(data) if data else None, "seed": seed, "calib": calib, "fit_log": fit_log}
    if ood:
        content = convert_with_features(model, spec, mode, calib_imgs, **options)
    else:
        content = convert_keras(model, spec, mode, calib_images=calib_imgs, **options, **internal)
    info = verify(content, mode, options)

    # agreement with the Keras model on val images (skipped, and said so, only if no data is found)
    report = {"mode": mode, "seed": seed, "split_seed": split_seed, **_report_options(options, internal),
              "calibration_images": 0 if calib_imgs is None else len(calib_imgs), **info}
    if m.tfmot:
        report["calibration_images"] = calib  # qat: only for tensors without a learned range
        report["fine_tuning"] = fit_log
        if "selected_epoch" in fit_log:
            log(f"{mode}: kept epoch {fit_log['selected_epoch']} of {fit_log['epochs']} "
                f"(fake-quantized val accuracy {fit_log['selected_val_accuracy']:.4f})")
    report["gzip_bytes"] = len(gzip.compress(content, compresslevel=9, mtime=0))
    try:
        val = dataset().split("val").head(agreement_n)
    except DataError as e:
        if mode in ("int8", "int16x8", "qat"):
            raise
        val = None
        log(f"agreement not measured: {e}")
    tmp_spec = spec.replace(quantization=mode)
    if val is not None and spec.task == "segmentation":
        from ..metrics.segmentation import dice_iou

        ref = np.asarray(model.predict(val.images.astype(np.float32), batch_size=16, verbose=0), np.float32)
        got = _tflite_predict(TFLiteSegmenter, content, tmp_spec, val.images, model_dir / f".{mode}.check.tflite")
        agree = float(((ref > 0.5) == (got > 0.5)).mean())
        d_ref = float(np.mean([dice_iou(ref[..., c], val.labels[..., c])[0].mean() for c in range(ref.shape[-1])]))
        d_got = float(np.mean([dice_iou(got[..., c], val.labels[..., c])[0].mean() for c in range(got.shape[-1])]))
        report.update(
            agreement=agree,
            agreement_n=len(val),
            agreement_kind="pixel",
            max_prob_gap=float(np.abs(ref - got).max()),
            keras_val_dice=d_ref,
            tflite_val_dice=d_got,
        )
        log(
            f"{mode}: pixel agreement with Keras on {len(val)} val images: {agree:.4f}; val Dice keras "
            f"{d_ref:.4f}, tflite {d_got:.4f}"
        )
        if agree < min_agreement:
            raise ConversionError(
                f"{mode}: pixel agreement {agree:.3f} with the Keras model is below {min_agreement}; nothing written"
            )
    elif val is not None:
        ref = keras_probs(model, val.images, spec)
        got = _tflite_predict(TFLiteClassifier, content, tmp_spec, val.images, model_dir / f".{mode}.check.tflite")
        agree = float((ref.argmax(1) == got.argmax(1)).mean())
        report.update(
            agreement=agree,
            agreement_n=len(val),
            max_prob_gap=float(np.abs(ref - got).max()),
            keras_val_acc=float((ref.argmax(1) == val.labels).mean()),
            tflite_val_acc=float((got.argmax(1) == val.labels).mean()),
        )
        log(
            f"{mode}: top-1 agreement with Keras on {len(val)} val images: {agree:.4f} (max prob gap "
            f"{report['max_prob_gap']:.4f})"
        )
        if report["input_dtype"] in ("uint8", "int8"):
            report.update(clipped_activations(content, tmp_spec, val.images[:50]))
        if agree < min_agreement:
            raise ConversionError(f"{mode}: top-1 agreement {agree:.3f} with the Keras model is below {min_agreement} "
                                  "on val images; the conversion is broken, nothing written")
        if mode == "qat":
            report.update(_qat_vs_ptq(model, spec, content, dataset(), options, calib, seed, model_dir, log))
            if report["qat_val_accuracy"] < report["ptq_val_accuracy"] and not options["allow_below_ptq"]:
                raise ConversionError(
                    f"qat: val accuracy {report['qat_val_accuracy']:.4f} is below PTQ int8's "
                    f"{report['ptq_val_accuracy']:.4f} "
                    f"on the same model ({report['val_n']} val images); nothing written "
                    "(try another --ft-lr or --ft-epochs, "
                    "use `--mode int8`, or pass --allow-below-ptq)"
                )
    if spec.crop == "wbc" and spec.task != "segmentation":  # a field model: quality limits of its training crops
        from ..tasks.ood import fit_quality

        tmp_spec = tmp_spec.replace(metrics={**(tmp_spec.metrics or {}), "quality": fit_quality(dataset(), seed=seed)})
    if ood:
        from ..tasks.ood import fit_ood_stats

        clf = _classifier(content, tmp_spec, model_dir / f".{mode}.ood.tflite")
        stats = fit_ood_stats(clf, dataset(), head=tuple(model.layers[-1].get_weights()), seed=seed)
        tmp_spec = tmp_spec.replace(metrics={**(tmp_spec.metrics or {}), "ood": stats.to_dict()})
        b = stats.basis
        report["ood"] = {"dim": stats.dim, "threshold": stats.threshold, "val_flagged": b["val_flagged"],
                         "fitted_on": b["fitted_on"]}
        log(f"{mode}: OOD statistics on {stats.dim} features; threshold {stats.threshold:.1f} flags "
            + ", ".join(f"{s} {v:.3f}" for s, v in b["val_flagged"].items()) + " of val")
    name = out_name or mode
    out = model_dir / f"{name}.tflite"
    atomic_write_bytes(out, content)
    tmp_spec.save(model_dir / f"{name}.json")
    atomic_write_text(model_dir / f"{name}.report.json", json.dumps(report, indent=2) + "\n")
    report["path"] = str(out)
    return report
