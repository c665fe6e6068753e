"""The Android bundle (``edge-wbc export-android``): a drop-in ``.tflite`` + labels + bundle JSON per model.

Classifiers and segmenters (a ModelSpec whose task is ``segmentation``: see :func:`export_segmenter`).

For every model it writes ``<name>.tflite`` (with TFLite metadata: labels + normalization, see
:mod:`edge_wbc.export.tflite_metadata`), ``<name>.labels.txt`` and ``<name>.json``, the bundle description
(input/output contract, quantization, accuracy, uncertain threshold, dataset license, sha256) that
also nests the full ModelSpec under ``"model_spec"``, so ``TFLiteClassifier`` and ``edge-wbc bench``
use the exported files directly (``spec_path_for`` picks ``<name>.json``).

Before anything is written the embedded model is checked: it loads, its metadata reads back to the
same labels and normalization, and its raw output tensors are bit-identical to the source model's on
a fixed set of inputs.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.catalog import dataset_credit, dataset_license
from ..defaults import EXPORT_TARGET_ACCURACY, EXPORT_THRESHOLD_GRID, UNCERTAIN_BELOW
from ..errors import ModelError, SpecError
from ..runtime.ood import RULE_TEXT as OOD_RULE_TEXT
from ..runtime.rule import UncertainRule, apply_temperature, read_rule
from ..spec import MODES, ModelSpec, spec_path_for
from . import tflite_metadata as tm

#: The device's rule, as the bundle states it (android_assets/README.md has the Kotlin of it).
UNCERTAIN_RULE_TEXT = ("p = softmax(log(p) / temperature) (skip when temperature is 1); report 'uncertain' when "
                       "the top p is below uncertain_threshold")

BUNDLE_FORMAT = "edge-wbc-android-bundle"
BUNDLE_VERSION = 1
LABELS_IN_MODEL = "labels.txt"  # name of the label file packed inside the .tflite
DEFAULT_TARGET_ACCURACY = EXPORT_TARGET_ACCURACY
THRESHOLD_GRID = EXPORT_THRESHOLD_GRID  # 0.50 .. 0.99
DEFAULT_THRESHOLD = UNCERTAIN_BELOW
PROJECT_LICENSE = "Apache-2.0"


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "model"


def _model_card(spec: ModelSpec) -> dict:
    """Version, author and licence (the model's and its training data's) of every bundle's metadata."""
    from .. import __version__

    return {"version": f"edge-wbc {__version__}", "author": "edge-wbc",
            "license": f"Model: {PROJECT_LICENSE}. Training data ({spec.dataset or 'unknown'}): "
                       f"{dataset_license(spec.dataset)}."}


def _image_input_metadata(spec: ModelSpec):
    """The input tensor's metadata of every bundle: an RGB (or gray) image of raw 0-255 pixels, identity
    normalization (the graph normalizes itself)."""
    color = "RGB" if spec.channels == 3 else "GRAYSCALE"
    graph_norm = f"x * {spec.norm_scale:.8g} + {spec.norm_offset:.8g}"
    return tm.TensorMetadata(
        name="image",
        description=(f"{spec.input_width}x{spec.input_height} {color} image, raw pixel values 0-255 (NHWC, no "
                     f"normalization: the graph computes {graph_norm} itself)."),
        content="image", color_space=color, image_size=(spec.input_width, spec.input_height),
        norm_mean=(0.0,), norm_std=(1.0,), stats_min=(0.0,), stats_max=(255.0,))


def _write_bundle(out: Path, name: str, new: bytes, labels_text: str, bundle: dict) -> dict:
    """<name>.tflite, <name>.labels.txt and <name>.json into ``out``, each atomically; returns ``bundle``."""
    from ..fileio import atomic_write_bytes, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{name}.tflite", new)
    atomic_write_text(out / f"{name}.labels.txt", labels_text)
    atomic_write_text(out / f"{name}.json", json.dumps(bundle, indent=2) + "\n")
    return bundle


def _bundle_head(name: str, new: bytes, src: bytes, tflite: Path, ins: dict, spec: ModelSpec,
                 task: str | None = None) -> dict:
    """What every bundle JSON starts with: format, names, hashes, source and the input contract."""
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        **({"task": task} if task else {}),
        "name": name,
        "model_file": f"{name}.tflite",
        "labels_file": f"{name}.labels.txt",
        "sha256": hashlib.sha256(new).hexdigest(),
        "size_bytes": len(new),
        "source": {"file": tflite.name, "sha256": hashlib.sha256(src).hexdigest()},
        "input": {
            "name": ins["name"],
            "shape": [int(v) for v in ins["shape"]],
            "dtype": np.dtype(ins["dtype"]).name,
            "layout": "NHWC",
            "color_order": "RGB" if spec.channels == 3 else "GRAY",
            "value_range": [0, 255],
            "normalization": (f"none outside the model: the graph computes {spec.norm_scale:.8g} * x + "
                              f"{spec.norm_offset:.8g} on the raw pixels"),
            "quantization": _quant(ins),
            "encode": ("q = round(pixel / scale) + zero_point, clamped to the dtype's range"
                       if ins["quantization"][0] else "pixel values as float32, 0-255"),
            "resize": {"size": [spec.input_height, spec.input_width], "filter": spec.resample, "crop": spec.crop},
        },
    }


# ---- inputs ------------------------------------------------------------------------------------
def resolve_inputs(paths: list[Path], modes: list[str] | None = None) -> list[tuple[Path, ModelSpec, str]]:
    """(tflite, spec, bundle name) for each DIR (its <mode>.tflite files) or .tflite file."""
    items: list[tuple[Path, ModelSpec, str]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            if not (p / "model.json").is_file():
                raise ModelError(f"{p}: not a model directory (no model.json)")
            files = sorted(f for f in p.glob("*.tflite") if f.stem in MODES)
            if modes:
                files = [f for f in files if f.stem in modes]
            if not files:
                want = ", ".join(f"{m}.tflite" for m in modes) if modes else "<mode>.tflite"
                raise ModelError(
                    f"{p}: no {want} to export (run `edge-wbc convert {p} --mode {(modes or ['int8'])[0]}` first)"
                )
            for f in files:
                spec = _load_spec(f)
                items.append((f, spec, f"{_safe(Path(spec.dataset).name or 'model')}_{f.stem}"))
        elif p.suffix == ".tflite":
            if not p.is_file():
                raise ModelError(f"{p}: no such model file")
            items.append((p, _load_spec(p), _safe(p.stem)))
        elif not p.exists():
            raise ModelError(f"{p}: no such file or directory")
        else:
            raise ModelError(f"{p}: expected a model directory or a .tflite file")
    seen: dict[str, Path] = {}
    for f, _, name in items:
        if name in seen:
            raise ModelError(f"{f} and {seen[name]} would both be exported as {name}.tflite")
        seen[name] = f
    return items


def _load_spec(tflite: Path) -> ModelSpec:
    try:
        spec = ModelSpec.load(spec_path_for(tflite))
    except SpecError as e:
        raise ModelError(f"{tflite}: {e}") from None
    if spec.task not in ("classification", "binary", "segmentation"):
        raise ModelError(f"{tflite}: export-android handles classification, binary and segmentation models, "
                         f"not {spec.task}")
    return spec


# ---- the interpreter -------------------------------------------------------------------------
def _interpreter(content: bytes):
    from ..runtime import interpreter_backend

    Interp, _, _ = interpreter_backend()
    it = Interp(model_content=content, num_threads=1)
    it.allocate_tensors()
    return it


def raw_outputs(content: bytes, images: np.ndarray) -> np.ndarray:
    """Raw output tensors for quantized inputs (N, H, W, C) in the input tensor's dtype."""
    it = _interpreter(content)
    i, outs = it.get_input_details()[0], it.get_output_details()
    out = []
    for x in images:
        it.set_tensor(i["index"], x[None])
        it.invoke()
        out.append(np.concatenate([it.get_tensor(o["index"]).reshape(-1) for o in outs]))  # every output
    return np.stack(out)


def probe_inputs(clf, n: int = 24, seed: int = 0) -> np.ndarray:
    """A fixed set of quantized inputs: black, white and seeded random images."""
    shape = clf.spec.input_shape
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros((1, *shape), np.uint8), np.full((1, *shape), 255, np.uint8),
                        rng.integers(0, 256, (n, *shape), dtype=np.uint8)])
    return np.stack([clf.quantize_input(xi) for xi in x])


def _quant(detail: dict) -> dict:
    scale, zp = detail["quantization"]
    return {"scale": float(scale), "zero_point": int(zp), "quantized": bool(scale)}


# ---- metadata ------------------------------------------------------------------------------------
def build_model_metadata(spec: ModelSpec, name: str, binary_sigmoid: bool,
                         features: int | None = None) -> tm.ModelMetadata:
    """TFLite metadata for an image classifier whose graph normalizes its raw 0-255 RGB input.

    NormalizationOptions is mean 0, std 1 (identity): an app or the Task Library must feed the
    pixel values as they are. Stats give the value range (0..255 in, 0..1 out).
    """

    labels_file = tm.AssociatedFile(
        LABELS_IN_MODEL, "TENSOR_AXIS_LABELS", "Class labels, one per line, in output order."
    )
    inp = _image_input_metadata(spec)
    if binary_sigmoid:
        # One sigmoid output: the probability of labels[1]. A label file on a 1-element axis would
        # mislead readers, so it is attached to the model instead.
        out = tm.TensorMetadata(name="probability", description=f"Sigmoid probability of '{spec.labels[1]}'.",
                                content="feature", stats_min=(0.0,), stats_max=(1.0,))
        model_files = (labels_file,)
    else:
        out = tm.TensorMetadata(
            name="probability",
            description=f"Softmax probabilities of the {spec.num_classes} labels.",
            content="feature",
            stats_min=(0.0,),
            stats_max=(1.0,),
            associated_files=(labels_file,),
        )
        model_files = ()
    return tm.ModelMetadata(
        name=name,
        description=(
            f"White-blood-cell classifier ({spec.source_model or 'model'}, {spec.quantization}) trained on "
            f"{spec.dataset or 'unknown data'}: {', '.join(spec.labels)}."
        ),
        **_model_card(spec),
        inputs=(inp,),
        outputs=(out,) if features is None else (out, tm.TensorMetadata(
            name="features",
            description=(f"The {features} penultimate features, for the out-of-distribution score "
                         "(Mahalanobis distance; statistics in the bundle JSON's ood). Not class scores."),
            content="feature")),
        subgraph_name=name,
        associated_files=model_files,
    )


# ---- evaluation: test accuracy of this exact file, uncertain threshold from val ------------------
def _at(conf: np.ndarray, correct: np.ndarray, t: float) -> dict:
    keep = conf >= t
    return {"n": int(len(conf)), "coverage": float(keep.mean()),
            "accuracy_reported": float(correct[keep].mean()) if keep.any() else None,
            "uncertain": int((~keep).sum()), "errors_reported": int((~correct & keep).sum()),
            "errors_total": int((~correct).sum())}


def evaluate(tflite: Path, spec: ModelSpec, data: str | Path | None, threshold: float | None,
             target_accuracy: float, rule=None) -> dict:
    """Accuracy of ``tflite`` on its dataset's test split; the uncertain rule's effect on val and test.

    The rule is the source model's calibrated one (``rule``, from ``edge-wbc calibrate``) when it has
    one; else a threshold is chosen on val from the 0.50-0.99 grid (temperature 1); ``threshold``
    (``--uncertain-below``) overrides either.
    """
    from ..data import load_dataset
    from ..errors import DataError
    from ..metrics.classification import macro_f1
    from ..runtime import TFLiteClassifier
    from ..tasks.calibrate import choose_threshold

    try:
        if spec.crop == "wbc":  # a field model: the WBC-centred crops of its sources
            from ..tasks.cellsets import load_for_spec as load_dataset  # noqa: F811
        ds = load_dataset(spec.dataset, spec, data=data, seed=spec.split_seed)
    except DataError as e:
        raise DataError(f"{e} (evaluation needs the {spec.dataset} data; --no-eval skips it)") from None
    clf = TFLiteClassifier(tflite, spec=spec)
    calibrated = rule is not None and rule.source != "default"
    temperature = rule.temperature if calibrated else 1.0
    res = {}
    for split in ("val", "test"):
        sp = ds.split(split)
        p = apply_temperature(clf.predict(sp.images), temperature)
        pred = p.argmax(1)
        res[split] = (p.max(1), pred == sp.labels, pred, sp.labels)
    conf_v, ok_v, _, _ = res["val"]
    conf_t, ok_t, pred_t, y_t = res["test"]
    if threshold is not None:
        t, basis = float(threshold), "set with --uncertain-below"
    elif calibrated:
        t, basis = rule.threshold, f"calibrated rule of the source model ({rule.source}; edge-wbc calibrate)"
    else:
        choice = choose_threshold(conf_v, ok_v, target_accuracy, candidates=THRESHOLD_GRID)
        t = choice.threshold
        if not choice.reached:
            t = DEFAULT_THRESHOLD
            basis = (f"default {DEFAULT_THRESHOLD}: no threshold in {THRESHOLD_GRID[0]:.2f}..{THRESHOLD_GRID[-1]:.2f} "
                     f"reaches accuracy {target_accuracy} on the reported val predictions")
        else:
            basis = (
                f"lowest threshold in {THRESHOLD_GRID[0]:.2f}..{THRESHOLD_GRID[-1]:.2f} (step 0.01) at which the "
                f"predictions it reports on the {spec.dataset} val split are at least {target_accuracy:.3g} accurate"
            )
    return {
        "test": {"dataset": spec.dataset, "split": "test", "n": int(len(y_t)), "accuracy": float(ok_t.mean()),
                 "macro_f1": macro_f1(y_t, pred_t, spec.num_classes)},
        "uncertain": {"threshold": t, "temperature": temperature, "basis": basis,
                      "target_accuracy": None if threshold is not None or calibrated else target_accuracy,
                      "val": _at(conf_v, ok_v, t), "test": _at(conf_t, ok_t, t),
                      "val_at_0.5": _at(conf_v, ok_v, 0.5)},
    }


# ---- segmenters -----------------------------------------------------------------------------
SEGMENTER_MASKS_NAME = "segmentation_masks"  # the output's metadata name, as MediaPipe's own writer names it
SEGMENTER_ACTIVATION = "NONE"  # the graph ends in its sigmoids: MediaPipe must not apply another activation
SEGMENTER_THRESHOLD = 0.5
SEGMENTER_CHANNELS_TEXT = (
    "one independent sigmoid per label (not a softmax): a pixel can belong to several labels at once, so "
    "use confidence masks and threshold each at 0.5; a category mask (argmax over the channels) is not "
    "meaningful for this model")


def build_segmenter_metadata(spec: ModelSpec, name: str) -> tm.ModelMetadata:
    """TFLite metadata for a segmenter, as MediaPipe Tasks' ImageSegmenter reads it.

    The input is an image with identity NormalizationOptions (the graph normalizes raw 0-255 pixels;
    MediaPipe needs the options for a float input and ignores them for uint8). The output is a
    GRAYSCALE image content over dimensions 1-2 (one mask per channel), with the labels as its
    TENSOR_AXIS_LABELS file, which is where ImageSegmenterGraph reads the labels from. The subgraph's
    ``SEGMENTER_METADATA`` custom metadata says activation NONE: the output is already probabilities.
    """

    inp = _image_input_metadata(spec)
    out = tm.TensorMetadata(
        name=SEGMENTER_MASKS_NAME,
        description=(f"{spec.num_classes} probability map(s) at the input's size, one channel per label "
                     f"({', '.join(spec.labels)}): {SEGMENTER_CHANNELS_TEXT}."),
        content="image", color_space="GRAYSCALE", content_range=(1, 2), stats_min=(0.0,), stats_max=(1.0,),
        associated_files=(tm.AssociatedFile(LABELS_IN_MODEL, "TENSOR_AXIS_LABELS",
                                            "Labels of the output channels, one per line, in channel order."),))
    return tm.ModelMetadata(
        name=name,
        description=(f"White-blood-cell segmenter ({spec.source_model or 'model'}, {spec.quantization}) trained on "
                     f"{spec.dataset or 'unknown data'}: {', '.join(spec.labels)}."),
        **_model_card(spec),
        inputs=(inp,), outputs=(out,), subgraph_name=name,
        min_parser_version=tm.CUSTOM_METADATA_PARSER_VERSION,
        custom_metadata=(tm.CustomMetadata(tm.SEGMENTER_METADATA_NAME,
                                           tm.build_segmenter_options(SEGMENTER_ACTIVATION)),),
    )


def export_segmenter(tflite: Path, spec: ModelSpec, name: str, out: Path) -> dict:
    """Write ``<name>.tflite`` (with ImageSegmenter metadata), ``<name>.labels.txt`` and ``<name>.json``.

    Checked before anything is written, as for classifiers: one output (MediaPipe's ImageSegmenter
    takes the last output as the masks; a second one would be read as a quality score), the metadata
    reads back as written, and the raw outputs are bit-identical to the source's on fixed inputs.
    Segmenters are not evaluated here: the quality figures are the ModelSpec's metrics, as measured
    when the model was made.
    """
    from ..runtime import TFLiteSegmenter

    seg = TFLiteSegmenter(tflite, spec=spec)  # checks the output shape and channel count against the spec
    src = seg.content
    outs = seg.interpreter.get_output_details()
    if len(outs) != 1:
        raise ModelError(f"{tflite}: a segmenter bundle needs exactly one output (the probability maps), "
                         f"this model has {len(outs)}")
    md = build_segmenter_metadata(spec, name)
    labels_text = "\n".join(spec.labels) + "\n"
    new = tm.populate(src, tm.build_metadata(md), {LABELS_IN_MODEL: labels_text.encode("utf-8")})
    back = tm.read_metadata(new)
    if back != md or tm.read_labels(new) != spec.labels:
        raise ModelError(f"{tflite}: the embedded metadata does not read back as written")
    if tm.parse_segmenter_options(back.custom_metadata[0].data) != SEGMENTER_ACTIVATION:
        raise ModelError(f"{tflite}: the embedded segmenter options do not read back as written")
    probe = probe_inputs(seg, n=6)
    if not np.array_equal(raw_outputs(src, probe), raw_outputs(new, probe)):
        raise ModelError(f"{tflite}: outputs changed after embedding metadata; nothing written")

    ins, o = seg.input, seg.output
    m = dict(spec.metrics or {})
    bundle = {
        **_bundle_head(name, new, src, tflite, ins, spec, task="segmentation"),
        "output": {
            "name": o["name"],
            "shape": [int(v) for v in o["shape"]],
            "dtype": np.dtype(o["dtype"]).name,
            "layout": "NHWC: one probability map per label, in labels order",
            "meaning": SEGMENTER_CHANNELS_TEXT,
            "activation": "sigmoid",
            "channels": "independent",
            "threshold": SEGMENTER_THRESHOLD,
            "quantization": _quant(o),
            "decode": "p = (q - zero_point) * scale" if o["quantization"][0] else "float32 probabilities",
            "to_image_size": "scale each map to the image's size (bilinear), then threshold, as edge-wbc segment does",
        },
        "mediapipe": {
            "task": "ImageSegmenter",
            "masks": "confidence masks (output_confidence_masks=True); not the category mask",
            "activation": SEGMENTER_ACTIVATION,
        },
        "labels": list(spec.labels),
        "metrics": m or None,
        "metrics_basis": "the ModelSpec's metrics, measured when the model was made (export-android does "
                         "not re-evaluate segmenters)",
        "dataset": {"name": spec.dataset, "license": dataset_license(spec.dataset),
                    "credit": dataset_credit(spec.dataset)},
        "model_license": PROJECT_LICENSE,
        "metadata": {
            "entry": tm.METADATA_NAME,
            "associated_files": [LABELS_IN_MODEL],
            "normalization": {"mean": list(md.inputs[0].norm_mean), "std": list(md.inputs[0].norm_std)},
            "custom_metadata": [tm.SEGMENTER_METADATA_NAME],
            "min_parser_version": md.min_parser_version,
        },
        "model_spec": spec.to_dict(),
    }
    return _write_bundle(out, name, new, labels_text, bundle)


# ---- export ------------------------------------------------------------------------------------
def export_one(tflite: Path, spec: ModelSpec, name: str, out: Path, *, evaluate_data: bool = True,
               data: str | Path | None = None, threshold: float | None = None,
               target_accuracy: float = DEFAULT_TARGET_ACCURACY, log: Callable[[str], None] = lambda s: None) -> dict:
    from ..runtime import TFLiteClassifier

    if spec.task == "segmentation":
        return export_segmenter(tflite, spec, name, out)
    clf = TFLiteClassifier(tflite, spec=spec)  # checks input shape and label count against the spec
    src = clf.content
    fo = clf.features_output
    if fo is not None and clf.interpreter.get_output_details()[0]["index"] != clf.output["index"]:
        raise ModelError(f"{tflite}: its first output is the features, not the probabilities (MediaPipe reads "
                         "the first output as the class head); convert it again with edge-wbc convert --ood")
    md = build_model_metadata(spec, name, clf.binary_sigmoid, None if fo is None else int(fo["shape"][-1]))
    labels_text = "\n".join(spec.labels) + "\n"
    new = tm.populate(src, tm.build_metadata(md), {LABELS_IN_MODEL: labels_text.encode("utf-8")})

    # The embedded model must read back and compute exactly what the source computes.
    back = tm.read_metadata(new)
    if back != md or tm.read_labels(new) != spec.labels:
        raise ModelError(f"{tflite}: the embedded metadata does not read back as written")
    probe = probe_inputs(clf)
    if not np.array_equal(raw_outputs(src, probe), raw_outputs(new, probe)):
        raise ModelError(f"{tflite}: outputs changed after embedding metadata; nothing written")

    rule = read_rule(spec_path_for(tflite))  # the source's one calibrated rule (default: T 1, 0.5)
    report = None
    if evaluate_data:
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / f"{name}.tflite"
            f.write_bytes(new)
            report = evaluate(f, spec, data, threshold, target_accuracy, rule)
        log(f"{name}: test accuracy {report['test']['accuracy']:.4f} (n={report['test']['n']}), "
            f"uncertain below {report['uncertain']['threshold']:.2f}")

    no_eval_rule = rule if threshold is None else UncertainRule(rule.temperature, float(threshold), "--uncertain-below")
    ins, outs = clf.input, clf.output
    # the rule is stored once, at the bundle's top level: no second copy in the nested spec's metrics
    spec = spec.replace(metrics={k: v for k, v in (spec.metrics or {}).items()
                                 if k not in ("temperature", "uncertain_below", "uncertain_val")})
    m = spec.metrics or {}
    bundle = {
        **_bundle_head(name, new, src, tflite, ins, spec),
        "output": {
            "name": outs["name"],
            "shape": [int(v) for v in outs["shape"]],
            "dtype": np.dtype(outs["dtype"]).name,
            "meaning": (
                f"sigmoid probability of '{spec.labels[1]}' (1 - p for '{spec.labels[0]}')"
                if clf.binary_sigmoid
                else "probability per class (softmax), in labels order"
            ),
            "activation": "sigmoid" if clf.binary_sigmoid else "softmax",
            "quantization": _quant(outs),
            "decode": ("p = (q - zero_point) * scale" if outs["quantization"][0] else "float32 probabilities"),
        },
        **({} if fo is None else {"features_output": {
            "name": fo["name"], "index_in_outputs": 1, "shape": [int(v) for v in fo["shape"]],
            "dtype": np.dtype(fo["dtype"]).name, "quantization": _quant(fo),
            "decode": "f = (q - zero_point) * scale" if fo["quantization"][0] else "float32 features",
            "meaning": "penultimate features for the OOD score (model_spec.metrics.ood); not class scores",
        }}),
        **({} if clf.ood is None else {"ood": {
            "rule": OOD_RULE_TEXT, "flag": "ood (the prediction reads 'uncertain')",
            "statistics": "model_spec.metrics.ood: means (classes x features), whiten (features x features), "
                          "threshold (stored there only)",
            **({} if clf.ood.shift is None else {"adapted": (
                "this bundle is adapted (edge-wbc adapt --method features): f' = f + metrics.ood.shift; the "
                "probabilities are softmax(f' @ metrics.ood.head.kernel + metrics.ood.head.bias), NOT output 0; "
                "the OOD score is taken on f'")}),
        }}),
        "labels": list(spec.labels),
        "temperature": report["uncertain"]["temperature"] if report else no_eval_rule.temperature,
        "uncertain_threshold": report["uncertain"]["threshold"] if report else no_eval_rule.threshold,
        "uncertain_rule": UNCERTAIN_RULE_TEXT,
        "uncertain_threshold_basis": report["uncertain"]
        if report
        else {"threshold": no_eval_rule.threshold, "temperature": no_eval_rule.temperature,
              "basis": f"{no_eval_rule.source} rule of the source model (exported with --no-eval)"},
        "accuracy": {
            "value": m.get("accuracy"),
            "macro_f1": m.get("macro_f1"),
            "test_set": f"{spec.dataset} {m.get('split', 'test')} split (n={m['n']})" if "n" in m else None,
            "measured_on": "the float (Keras) model after training (ModelSpec metrics)",
        }
        if "accuracy" in m
        else None,
        "accuracy_this_file": report["test"] if report else None,
        "dataset": {
            "name": spec.dataset,
            "license": dataset_license(spec.dataset),
            "credit": dataset_credit(spec.dataset),
        },
        "model_license": PROJECT_LICENSE,
        "metadata": {
            "entry": tm.METADATA_NAME,
            "associated_files": [LABELS_IN_MODEL],
            "normalization": {"mean": list(md.inputs[0].norm_mean), "std": list(md.inputs[0].norm_std)},
            "min_parser_version": md.min_parser_version,
        },
        "model_spec": spec.to_dict(),
    }
    return _write_bundle(out, name, new, labels_text, bundle)


def export_android(
    paths: list[Path],
    out: Path,
    modes: list[str] | None = None,
    *,
    evaluate_data: bool = True,
    data: str | Path | None = None,
    threshold: float | None = None,
    target_accuracy: float = DEFAULT_TARGET_ACCURACY,
    log: Callable[[str], None] = lambda s: None,
) -> list[dict]:
    items = resolve_inputs(paths, modes)  # resolve everything first: a bad argument writes nothing
    return [export_one(f, spec, name, Path(out), evaluate_data=evaluate_data, data=data, threshold=threshold,
                       target_accuracy=target_accuracy, log=log) for f, spec, name in items]
