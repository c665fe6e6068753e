"""The field detector's trainer on a few real fields (tiny U-Net, a few steps): artifacts, spec, refusals."""

from __future__ import annotations

import json

import pytest

from edge_wbc.errors import DataError
from edge_wbc.training.detector import DetectorHParams, train_detector


def test_holdout_and_sizes_are_checked_before_any_work():
    with pytest.raises(DataError, match=r"--holdout 'pbc' is not a source of 'fields:bccd,sigtuple': valid choices "
                                        r"are bccd, sigtuple"):
        DetectorHParams(dataset="fields:bccd,sigtuple", holdout="pbc")
    with pytest.raises(DataError, match="leaves no source to train on"):
        DetectorHParams(dataset="fields:bccd", holdout="bccd")
    with pytest.raises(DataError, match="window 100 px must be divisible by 16"):
        DetectorHParams(window=100)
    assert DetectorHParams(dataset="fields:bccd,smartphone_pig,sigtuple", holdout="sigtuple").train_sources == (
        "bccd", "smartphone_pig")


def test_train_a_tiny_detector_on_real_fields(tmp_path, data_root):
    from edge_wbc.spec import ModelSpec

    hp = DetectorHParams(dataset="fields:bccd,smartphone_pig,sigtuple", holdout="sigtuple", epochs=1, steps=2,
                         batch=4, crop=32, window=64, limit=2, model_kwargs={"base": 4, "depth": 2})
    m = train_detector(hp, tmp_path, data=data_root, verbose=0, log=lambda s: None)
    spec = ModelSpec.load(tmp_path)
    # trained on its train sources only: the held-out source is not in its dataset (licences, calibration)
    assert spec.dataset == "fields:bccd,smartphone_pig" and m["holdout"] == "sigtuple"
    assert (spec.task, spec.labels, spec.input_height, spec.input_width) == ("segmentation", ("wbc",), 64, 64)
    assert spec.metrics["detector"] == "fields" and spec.metrics["um_per_px"] == 0.5
    assert m["train_fields"] == 4 and m["val_fields"] == 4  # 2 per source and split
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["best_val_loss"] == pytest.approx(m["best_val_loss"]) and saved["best_val_loss"] > 0
    import keras

    model = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert tuple(model.input_shape[1:3]) == (64, 64)  # rebuilt at the window size for conversion
