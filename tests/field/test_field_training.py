"""The field trainer, AdaBN and `edge-wbc adapt` on a few real cells of every source (tiny runs)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from edge_wbc.errors import DataError, SpecError
from edge_wbc.training.field import FieldHParams


@pytest.fixture(scope="module")
def tiny_field(tmp_path_factory, data_root):
    from edge_wbc.data.cells import list_cells
    from edge_wbc.tasks.cellsets import crop_items
    from edge_wbc.training.field import train_field

    it = list_cells(["pbc128", "bccd", "wbcseg"], data=data_root)
    src, sp = np.array(it.sources), np.array(it.splits)
    keep = np.zeros(len(it), bool)
    for s in ("pbc128", "bccd", "wbcseg"):
        for p in ("train", "val", "test"):
            keep[np.flatnonzero((src == s) & (sp == p))[:8]] = True
    cc = crop_items(it.select(keep), 1.5, "wbc_unet_int8", cache=False)
    out = tmp_path_factory.mktemp("field")
    m = train_field(FieldHParams(epochs=1, steps=2, batch=8, holdout="wbcseg"), out, crops=cc, log=lambda s: None)
    return out, m, cc


def test_field_hparams_errors():
    with pytest.raises(SpecError, match="holdout 'x' is not one of the sources pbc128, bccd, wbcseg"):
        FieldHParams(holdout="x")
    with pytest.raises(SpecError, match="invalid augment 'heavy': valid choices are field, light, none"):
        FieldHParams(augment="heavy")
    with pytest.raises(SpecError, match="'unet' is a segmentation model"):
        FieldHParams(model="unet")


def test_holdout_source_never_trains(tiny_field):
    out, m, cc = tiny_field
    assert m["train_counts"] == {"pbc128": 8, "bccd": 8}  # wbcseg held out of training...
    assert set(m["val"]) == {"pbc128", "bccd"}  # ... and of the epoch choice
    assert m["heldout"]["source"] == "wbcseg" and m["heldout"]["n"] == 24
    spec = json.loads((out / "model.json").read_text())
    assert spec["crop"] == "wbc" and spec["crop_ratio"] == 1.5 and spec["dataset"] == "pbc128,bccd"
    assert len((out / "history.csv").read_text().strip().splitlines()) == 2  # header + 1 epoch


def test_adabn_sets_exact_statistics(tiny_field):
    import keras

    from edge_wbc.keras_objects import custom_objects
    from edge_wbc.tasks.cellsets import to_model_size
    from edge_wbc.training.adapt import adabn

    out, _, cc = tiny_field
    model = keras.saving.load_model(out / "model.keras", compile=False, custom_objects=custom_objects())
    x = to_model_size(cc.x[cc.src == "wbcseg"], (64, 64)).astype(np.float32)
    ad = adabn(model, x)
    bn = next(layer for layer in ad.layers if isinstance(layer, keras.layers.BatchNormalization))
    feats = np.asarray(keras.Model(ad.inputs, bn.input)(x)).reshape(-1, bn.input.shape[-1])
    np.testing.assert_allclose(bn.moving_mean.numpy(), feats.mean(0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), feats.var(0), rtol=1e-3, atol=1e-4)
    w0 = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][0].get_weights()[0]
    w1 = [layer for layer in ad.layers if isinstance(layer, keras.layers.Conv2D)][0].get_weights()[0]
    np.testing.assert_array_equal(w0, w1)  # only statistics change
    with pytest.raises(DataError, match="at least 20 images, got 5"):
        adabn(model, x[:5])


def test_adapt_bundle_and_its_errors(tiny_field, tmp_path, data_root):
    from edge_wbc.runtime import TFLiteClassifier
    from edge_wbc.tasks.classify import classify_to_csv
    from edge_wbc.training.adapt import adapt_bundle

    out, _, cc = tiny_field
    imgs = tmp_path / "site"
    imgs.mkdir()
    files = sorted((data_root / "wbc_seg" / "dataset1").glob("*.bmp"))[:24]
    for f in files:
        shutil.copy(f, imgs / f.name)
    few = tmp_path / "few"
    few.mkdir()
    for f in files[:5]:
        shutil.copy(f, few / f.name)
    with pytest.raises(DataError, match="at least 20 images, found 5"):
        adapt_bundle(str(out), few, tmp_path / "b0", log=lambda s: None)
    assert not (tmp_path / "b0").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text(f"file,label\n{files[0].name},blast\n")
    with pytest.raises(DataError, match="unknown class 'blast'; valid classes are basophil"):
        adapt_bundle(str(out), imgs, tmp_path / "b1", labels_csv=bad, log=lambda s: None)
    missing = tmp_path / "missing.csv"
    missing.write_text("nothere.bmp,neutrophil\n")
    with pytest.raises(DataError, match="'nothere.bmp' is not among the --images files"):
        adapt_bundle(str(out), imgs, tmp_path / "b1", labels_csv=missing, log=lambda s: None)
    assert not (tmp_path / "b1").exists()
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{f.name},neutrophil\n" for f in files[:4]))
    r = adapt_bundle(str(out), imgs, tmp_path / "bundle", labels_csv=labels, log=lambda s: None)
    assert r["unlabelled_images"] == 24 and r["labelled_cells"] == 4
    b = tmp_path / "bundle"
    assert {"int8.tflite", "int8.json", "model.keras", "labels.txt", "adapt.json"} <= {p.name for p in b.iterdir()}
    assert json.loads((b / "int8.json").read_text())["metrics"]["adapted_on"]["labelled_cells"] == 4
    clf = TFLiteClassifier(b / "int8.tflite")
    buf = io.StringIO()
    res = classify_to_csv(clf, files[:3], buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert res.n_ok == 3 and len(rows) == 3 and "flag" in rows[0]
    with pytest.raises(DataError, match="exists and is not empty"):
        adapt_bundle(str(out), imgs, b, log=lambda s: None)
