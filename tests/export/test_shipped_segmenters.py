"""The shipped segmentation models: file hash, labels, spec and tensors, as the classifier bundles are checked.

Each ships as an Android bundle made by `edge-wbc export-android` (<stem>.tflite with the TFLite metadata
MediaPipe's ImageSegmenter reads, <stem>.labels.txt, <stem>.json with the nested ModelSpec). Both the
bundle file's sha256 and that of the bare model it was made from (the bundle's ``source``) are pinned
here, so a replaced model file is a deliberate change of this table, not an accident.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edge_wbc.data.catalog import dataset_license
from edge_wbc.export import tflite_metadata as tm
from edge_wbc.export.android import BUNDLE_FORMAT
from edge_wbc.runtime import TFLiteSegmenter, interpreter_backend
from edge_wbc.spec import ModelSpec

ASSETS = Path(__file__).resolve().parents[2] / "android_assets"
SEGMENTERS = {
    # file: (sha256 of the bundle file, labels, (H, W), dataset)
    "wbc_unet_int8.tflite": ("d1946f4ae02c6ad0f2613630201f78184fade974fb1f760514379a98501694be",
                             ("wbc", "nucleus"), (128, 128), "wbcseg"),
    "smear_unet_int8.tflite": ("8020aade57a97d578aa5c5cab1379f4a836f818fb4e17ac136fbc1488a3b7010",
                               ("wbc",), (128, 160), "bccd_smear"),
    # the default detector of count: the multi-source field detector (BCCD + smartphone_pig fields at 0.5 µm/px)
    "wbc_det_int8.tflite": ("c861213d56bd8bf308dbf7afea5d3f56428e93fb96110fde0e3f07e4a07e7c4b",
                            ("wbc",), (288, 288), "fields:bccd,smartphone_pig"),
    # the same weights behind a 128 px window: count runs it on a field that fits in one (session 18)
    "wbc_det128_int8.tflite": ("8ae83ddf9d21f0d785c63440905884a9a283dfb33746b3d21615c89ced498d21",
                               ("wbc",), (128, 128), "fields:bccd,smartphone_pig"),
}
SOURCES = {  # sha256 of the bare converter output each bundle was made from (shipped before the metadata)
    "wbc_unet_int8.tflite": "ab8e6da2811d4bdd231331d4898d354dddcfedb303f4a4bd8f06c6c4b8cf3e30",
    "smear_unet_int8.tflite": "4e72d9a115dd54d7ea2b551d801d23ed37a86fb9fe2af7f9487c4a3ac5e0d279",
    "wbc_det_int8.tflite": "4183bf26538e9a4f9294f6c35a58006131d31d9ec8b037a17969186d3b7ed2eb",
    "wbc_det128_int8.tflite": "2c70d96d4bc5121b3bd6e04df096b9ebb828f57db9aad774f2d81952547479da",
}


def test_every_shipped_segmenter_is_listed():
    shipped = {p.name for p in ASSETS.glob("*.tflite") if ModelSpec.load(p.with_suffix(".json")).task == "segmentation"}
    assert shipped == set(SEGMENTERS)


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_shipped_segmenter_matches_its_hash_spec_and_tensors(name):
    sha, labels, (h, w), dataset = SEGMENTERS[name]
    path = ASSETS / name
    content = path.read_bytes()
    assert hashlib.sha256(content).hexdigest() == sha
    spec = ModelSpec.load(path.with_suffix(".json"))
    assert spec.task == "segmentation" and spec.labels == labels and spec.quantization == "int8"
    assert spec.input_shape == (h, w, 3) and spec.dataset == dataset and dataset_license(dataset)
    assert spec.normalization_in_graph and spec.crop == "none"
    it = interpreter_backend()[0](model_content=content)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    assert [int(v) for v in i["shape"]] == [1, h, w, 3] and np.dtype(i["dtype"]) == np.uint8
    assert tuple(i["quantization"]) == (1.0, 0)  # raw pixels are the quantized input
    assert [int(v) for v in o["shape"]] == [1, h, w, len(labels)] and np.dtype(o["dtype"]) == np.uint8
    assert o["quantization"][0] == pytest.approx(1 / 256) and o["quantization"][1] == 0
    # the bundle: its JSON, labels file and the metadata MediaPipe's ImageSegmenter reads
    b = json.loads(path.with_suffix(".json").read_text())
    assert b["format"] == BUNDLE_FORMAT and b["task"] == "segmentation" and b["model_file"] == name
    assert b["sha256"] == sha and b["size_bytes"] == len(content) and b["source"]["sha256"] == SOURCES[name]
    assert b["labels"] == list(labels) == [ln for ln in (ASSETS / b["labels_file"]).read_text().splitlines()]
    assert b["output"]["activation"] == "sigmoid" and b["output"]["channels"] == "independent"
    assert "category mask" in b["output"]["meaning"] and b["mediapipe"]["activation"] == "NONE"
    assert b["dataset"]["license"] == dataset_license(dataset) and b["dataset"]["credit"]
    assert b["input"]["shape"] == [1, h, w, 3] and b["output"]["shape"] == [1, h, w, len(labels)]
    assert tm.read_labels(content) == labels
    md = tm.read_metadata(content)
    assert md.inputs[0].image_size == (w, h) and (md.inputs[0].norm_mean, md.inputs[0].norm_std) == ((0.0,), (1.0,))
    o_md = md.outputs[0]
    assert (o_md.name, o_md.content, o_md.color_space, o_md.content_range) == (
        "segmentation_masks", "image", "GRAYSCALE", (1, 2))
    assert [(f.name, f.type) for f in o_md.associated_files] == [("labels.txt", "TENSOR_AXIS_LABELS")]
    assert [c.name for c in md.custom_metadata] == ["SEGMENTER_METADATA"] and md.min_parser_version == "1.5.0"
    assert tm.parse_segmenter_options(md.custom_metadata[0].data) == "NONE"
    # the README table names it with its labels
    readme = (ASSETS / "README.md").read_text(encoding="utf-8")
    row = next(ln for ln in readme.splitlines() if ln.startswith(f"| `{path.stem}`"))
    assert all(f"`{lab}`" in row for lab in labels) and f"{h}x{w}" in row


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_shipped_segmenter_finds_the_cell_of_a_real_image(name, pbc_files, data_root):
    from PIL import Image

    seg = TFLiteSegmenter(ASSETS / name)
    if name.startswith("wbc_det"):  # the field detector: a BCCD field at its scale, as count runs it
        from edge_wbc.tasks.fieldsets import resample
        from edge_wbc.tasks.scale import estimate_scale

        img = Image.open(data_root / "bccd" / "BCCD" / "JPEGImages" / "BloodImage_00000.jpg").convert("RGB")
        small = resample(img, estimate_scale(img).um_per_px / seg.spec.metrics["um_per_px"])
        wbc = seg.predict_windows(np.asarray(small), 48)[..., 0] > 0.5
        assert 0.01 < wbc.mean() < 0.3  # one WBC in a 640x480 field
        return
    if name.startswith("smear"):
        img = Image.open(data_root / "bccd" / "BCCD" / "JPEGImages" / "BloodImage_00000.jpg").convert("RGB")
    else:
        img = Image.open(pbc_files["neutrophil"][0]).convert("RGB")
    p = seg.predict_image(img)
    assert p.shape[-1] == len(SEGMENTERS[name][1]) and p.dtype == np.float32
    assert 0.0 <= p.min() and p.max() <= 1.0
    wbc = p[..., 0] > 0.5
    assert 0.005 < wbc.mean() < 0.6  # a WBC is found, and it is not the whole image


def test_no_shipped_model_is_trained_on_data_without_redistribution_rights():
    """SigTuple (and 'seg', which contains it) and ALL-IDB2 may be used for evaluation only."""
    import json

    banned = {"sigtuple", "seg", "allidb2", "all_idb2"}
    for p in sorted(ASSETS.glob("*.json")):
        d = json.loads(p.read_text())
        spec = d.get("model_spec", d)
        if "task" not in spec:
            continue
        used = {s.strip() for s in str(spec.get("dataset") or "").removeprefix("fields:").split(",")}
        assert not used & banned, f"{p.name} was trained on {sorted(used & banned)}"
