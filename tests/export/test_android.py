"""The Android bundle: shipped files agree with their JSON and metadata; export round trip."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.data.catalog import dataset_license
from edge_wbc.errors import ModelError
from edge_wbc.export import tflite_metadata as tm
from edge_wbc.export.android import BUNDLE_FORMAT, LABELS_IN_MODEL, export_android, raw_outputs
from edge_wbc.runtime import TFLiteClassifier, interpreter_backend
from edge_wbc.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "android_assets"
SHIPPED = sorted(ASSETS.glob("*.tflite"))
runner = CliRunner()


def _lines(p: Path) -> list[str]:
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _details(content: bytes):
    Interp, _, _ = interpreter_backend()
    it = Interp(model_content=content)
    it.allocate_tensors()
    return it.get_input_details()[0], it.get_output_details()[0]


def test_shipped_bundle_is_complete():
    names = {p.name for p in ASSETS.iterdir()}
    for f in (
        "bloodmnist_int8.tflite",
        "bloodmnist_float16.tflite",
        "labels.txt",
        "model.json",
        "bloodmnist.keras",
        "README.md",
    ):
        assert f in names, f
    for m in ("bloodmnist_int8", "bloodmnist_float16"):
        assert json.loads((ASSETS / f"{m}.json").read_text()).get("format") == BUNDLE_FORMAT, m
        assert (ASSETS / f"{m}.labels.txt").is_file()


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_matches_its_json_and_labels(model):
    spec = ModelSpec.load(model.with_suffix(".json"))
    if spec.task == "segmentation":
        pytest.skip("a segmenter bundle: checked by tests/export/test_shipped_segmenters.py")
    b = json.loads(model.with_suffix(".json").read_text())
    assert b.get("format") == BUNDLE_FORMAT, (
        f"{model.name} is not an Android bundle (no labels file, no metadata): "
        f"run `edge-wbc export-android android_assets/{model.name} --out android_assets/`")
    content = model.read_bytes()
    labels = _lines(ASSETS / b["labels_file"])
    if model.stem.startswith("bloodmnist"):  # labels.txt is the BloodMNIST models' shared label file
        assert labels == _lines(ASSETS / "labels.txt")
    assert b["model_file"] == model.name and b["sha256"] == hashlib.sha256(content).hexdigest()
    assert b["size_bytes"] == len(content)
    assert labels == b["labels"] == b["model_spec"]["labels"] == list(spec.labels)
    # Tensors as the interpreter sees them.
    ins, outs = _details(content)
    assert b["input"]["shape"] == [int(v) for v in ins["shape"]] and b["input"]["layout"] == "NHWC"
    assert b["input"]["dtype"] == np.dtype(ins["dtype"]).name
    sigmoid = b["output"]["activation"] == "sigmoid"  # a binary model with one sigmoid output
    assert b["output"]["activation"] in ("softmax", "sigmoid")
    assert b["output"]["shape"] == [int(v) for v in outs["shape"]] == [1, 1 if sigmoid else len(labels)]
    assert b["output"]["dtype"] == np.dtype(outs["dtype"]).name
    for side, d in (("input", ins), ("output", outs)):
        assert (b[side]["quantization"]["scale"], b[side]["quantization"]["zero_point"]) == pytest.approx(
            d["quantization"]
        )
    assert tuple(b["input"]["shape"][1:]) == spec.input_shape and b["input"]["value_range"] == [0, 255]
    if "int8" in model.stem:  # raw pixels are the quantized values: no scaling on the device
        assert b["input"]["dtype"] == "uint8" and b["input"]["quantization"] == {
            "scale": 1.0,
            "zero_point": 0,
            "quantized": True,
        }
    else:
        assert b["input"]["dtype"] == "float32"
    assert (b["dataset"]["name"], b["dataset"]["license"]) == (spec.dataset, dataset_license(spec.dataset))
    assert 0.5 <= b["uncertain_threshold"] < 1.0
    if b["accuracy"] is not None:
        assert b["accuracy"]["value"] == spec.metrics["accuracy"] and "test" in b["accuracy"]["test_set"]
    # The embedded TFLite metadata: labels (packed file) and normalization.
    assert tm.read_labels(content) == tuple(labels)
    md = tm.read_metadata(content)
    inp = md.inputs[0]
    assert inp.has_normalization and (inp.norm_mean, inp.norm_std) == ((0.0,), (1.0,))
    assert (
        inp.content == "image" and inp.color_space == "RGB" and inp.image_size == (spec.input_width, spec.input_height)
    )
    assert md.label_file() == LABELS_IN_MODEL and md.min_parser_version == "1.0.0"
    if not sigmoid:  # the label file annotates the output's class axis
        assert md.outputs[0].associated_files[0].type == "TENSOR_AXIS_LABELS"
    assert set(tm.read_associated_files(content)) == {LABELS_IN_MODEL}
    # The runtime picks <stem>.json (nested model_spec) and loads the model with its metadata.
    clf = TFLiteClassifier(model)
    assert clf.spec.labels == tuple(labels)
    p = clf.predict(np.zeros((1, *spec.input_shape), np.uint8))
    assert p.shape == (1, len(labels)) and abs(float(p.sum()) - 1.0) < 0.02


def test_metadata_round_trip_without_a_model():
    md = tm.ModelMetadata(
        name="m",
        description="d",
        version="1",
        author="a",
        license="l",
        subgraph_name="sg",
        inputs=(tm.TensorMetadata("image", "x", "image", "RGB", (28, 28), (0.0,), (1.0,), (0.0,), (255.0,)),),
        outputs=(
            tm.TensorMetadata(
                "probability",
                "y",
                "feature",
                stats_min=(0.0,),
                stats_max=(1.0,),
                associated_files=(tm.AssociatedFile("labels.txt", "TENSOR_AXIS_LABELS", "labels"),),
            ),
        ),
    )
    buf = tm.build_metadata(md)
    assert buf[4:8] == b"M001"
    assert tm.parse_metadata(buf) == md
    with pytest.raises(ModelError, match="no M001 identifier"):
        tm.parse_metadata(b"\0" * 16)


def test_metadata_embedding_keeps_outputs_identical(tiny_converted, bloodmnist):
    src = (tiny_converted / "int8.tflite").read_bytes()
    assert tm.read_metadata(src) is None and tm.read_associated_files(src) == {}
    md = tm.ModelMetadata(
        name="t",
        inputs=(tm.TensorMetadata("image", content="image", norm_mean=(0.0,), norm_std=(1.0,)),),
        outputs=(tm.TensorMetadata("p", associated_files=(tm.AssociatedFile("labels.txt", "TENSOR_AXIS_LABELS"),)),),
    )
    files = {"labels.txt": "\n".join(bloodmnist.labels).encode()}
    new = tm.populate(src, tm.build_metadata(md), files)
    assert tm.read_labels(new) == bloodmnist.labels
    assert tm.flatbuffer_size(new) < len(new) and tm.flatbuffer_size(src) == len(src)
    assert tm.populate(new, tm.build_metadata(md), files) == new  # replaces, never stacks
    kept = tm.model_metadata_entries(src)
    assert {k: v for k, v in tm.model_metadata_entries(new).items() if k in kept} == kept
    x = bloodmnist.split("test").images[:64]
    assert np.array_equal(raw_outputs(src, x), raw_outputs(new, x))


def test_export_round_trip(tiny_converted, data_root, bloodmnist, tmp_path):
    out = tmp_path / "bundle"
    r = runner.invoke(app, ["export-android", str(tiny_converted), "--mode", "int8", "--mode", "float16",
                            "--out", str(out), "--data", str(data_root)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"bloodmnist_{m}.{ext}" for m in ("int8", "float16") for ext in ("tflite", "labels.txt", "json"))
    x = bloodmnist.split("test").images[:64]
    for mode in ("int8", "float16"):
        f = out / f"bloodmnist_{mode}.tflite"
        b = json.loads(f.with_suffix(".json").read_text())
        spec = ModelSpec.load(tiny_converted / f"{mode}.json")
        assert b["model_spec"] == spec.to_dict() and b["name"] == f"bloodmnist_{mode}"
        assert b["source"]["sha256"] == hashlib.sha256((tiny_converted / f"{mode}.tflite").read_bytes()).hexdigest()
        assert b["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert tm.read_labels(f.read_bytes()) == spec.labels == tuple(_lines(out / b["labels_file"]))
        a = TFLiteClassifier(tiny_converted / f"{mode}.tflite")
        e = TFLiteClassifier(f)  # found its spec through bloodmnist_<mode>.json
        assert e.spec == spec
        assert np.array_equal(raw_outputs(a.content, np.stack([a.quantize_input(v) for v in x])),
                              raw_outputs(e.content, np.stack([e.quantize_input(v) for v in x])))
        assert np.array_equal(a.predict(x), e.predict(x))
        # Evaluated on the real test split; the threshold comes from val and says how.
        assert b["accuracy_this_file"]["n"] == len(bloodmnist.split("test"))
        assert b["accuracy_this_file"]["accuracy"] == pytest.approx(
            float((e.predict(bloodmnist.split("test").images).argmax(1) == bloodmnist.split("test").labels).mean()))
        assert b["uncertain_threshold_basis"]["val"]["n"] == len(bloodmnist.split("val"))
    # Exporting an exported file again (a .tflite input keeps its stem) is byte-identical.
    again = tmp_path / "again"
    export_android([out / "bloodmnist_int8.tflite"], again, evaluate_data=False)
    assert (again / "bloodmnist_int8.tflite").read_bytes() == (out / "bloodmnist_int8.tflite").read_bytes()


def test_export_errors_are_one_line(tiny_converted, tmp_path):
    for args, msg in (([str(tmp_path / "missing")], "no such file or directory"),
                      ([str(tiny_converted), "--mode", "bogus"], "invalid --mode 'bogus'"),
                      ([str(tiny_converted), "--mode", "int16x8"], "no int16x8.tflite to export"),
                      ([str(tmp_path)], "not a model directory")):
        r = runner.invoke(app, ["export-android", *args, "--out", str(tmp_path / "o"), "--no-eval"])
        assert r.exit_code == 2, r.output
        assert msg in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
