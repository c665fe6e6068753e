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


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory, data_root):
    tmp_path = tmp_path_factory.mktemp("det")
    hp = DetectorHParams(dataset="fields:bccd,smartphone_pig,sigtuple", holdout="sigtuple", epochs=1, steps=2,
                         batch=4, crop=32, window=64, limit=2, model_kwargs={"base": 4, "depth": 2})
    return tmp_path, train_detector(hp, tmp_path, data=data_root, verbose=0, log=lambda s: None)


def test_train_a_tiny_detector_on_real_fields(tiny_detector):
    from edge_wbc.spec import ModelSpec

    tmp_path, m = tiny_detector
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


def test_rewindow_keeps_the_weights_and_checks_the_size(tiny_detector, tmp_path):
    import keras
    import numpy as np

    from edge_wbc.training.detector import rewindow

    src, _ = tiny_detector
    spec = rewindow(src, 96, tmp_path / "b")
    assert (spec.input_height, spec.input_width) == (96, 96) and spec.metrics["detector"] == "fields"
    a = keras.saving.load_model(src / "model.keras", compile=False)
    b = keras.saving.load_model(tmp_path / "b" / "model.keras", compile=False)
    assert tuple(b.input_shape[1:3]) == (96, 96)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    # fully convolutional: the centre of a 64 px input is the same in the 96 px model
    x = np.random.default_rng(0).integers(0, 255, (1, 96, 96, 3)).astype(np.float32)
    pa, pb = a.predict(x[:, 16:80, 16:80], verbose=0), b.predict(x, verbose=0)
    assert np.abs(pa[0, 16:48, 16:48] - pb[0, 32:64, 32:64]).max() < 1e-3
    with pytest.raises(DataError, match="window 90 px must be divisible by 16"):
        rewindow(src, 90)
