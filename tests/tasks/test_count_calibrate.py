"""Counting and calibration rules with a stand-in detector and known probabilities (no TFLite model, fast)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from edge_wbc.data.containers import Dataset, Split
from edge_wbc.defaults import EXPORT_THRESHOLD_GRID
from edge_wbc.runtime import TFLiteClassifier
from edge_wbc.runtime.rule import UncertainRule
from edge_wbc.spec import ModelSpec
from edge_wbc.tasks import calibrate as cal
from edge_wbc.tasks import count as cnt
from edge_wbc.tasks.cells import CellAnswerer

LABELS = ("a", "b", "c")


class StandInDetector:
    """A 'segmenter' whose WBC map (16 x 16) is given."""

    path = "stand-in-detector.tflite"

    def __init__(self, prob):
        self.spec = ModelSpec("segmentation", 16, 16, ("wbc",))
        self.prob = prob
        self.seen = []

    def predict(self, x):
        self.seen.append(x.shape)
        return self.prob[None, ..., None]


class StandInClassifier:
    """A 'classifier' that answers the given probabilities, one row per call, and records its crops."""

    def __init__(self, rows):
        self.spec = ModelSpec("classification", 8, 8, LABELS)
        self.labels = LABELS
        self.rule = UncertainRule()
        self.rows = list(rows)
        self.crops = []

    ood = None  # no features output: no OOD score
    path, backend, backend_version = "stand-in-classifier.tflite", "stand-in", "0"

    def predict(self, x):
        self.crops.append(x)
        return np.array([self.rows.pop(0)], np.float64)

    def predict_features(self, x):
        return self.predict(x), None

    predict_image = TFLiteClassifier.predict_image  # the real preprocessing, then the stand-in's predict


def _counter(rows, uncertain_below=0.6, temperature=1.0):
    """A SmearCounter on stand-ins; image-quality flags off (they have their own tests): the rule alone decides."""
    prob = np.zeros((16, 16))
    prob[2:6, 2:6] = 0.9  # box [2, 2, 6, 6] in the map -> [4, 4, 12, 12] on the 32 px smear
    prob[8:12, 10:14] = 0.8  # -> [20, 16, 28, 24]
    prob[14, 0] = 0.4  # below the mask threshold: no cell
    sc = object.__new__(cnt.SmearCounter)
    sc.det, sc.clf = StandInDetector(prob), StandInClassifier(rows)
    sc.tile, sc.window, sc.threshold = False, None, 0.5  # tile=False: the detector as it is, scale only reported
    sc.um_per_px, sc.det_um, sc.cell, sc.cell_um, sc.field_detector = None, 0.25, None, None, False
    sc.nuclei, sc.add_nuclei = False, False  # the stand-in detector alone
    sc.temperature, sc.uncertain_below = temperature, uncertain_below
    sc.rule = UncertainRule(temperature, uncertain_below)
    sc.answerer = CellAnswerer(sc.clf, rule=sc.rule)
    return sc


@pytest.fixture(autouse=True)
def _no_quality_flags(monkeypatch):
    import edge_wbc.tasks.cells as cells

    monkeypatch.setattr(cells, "image_flags", lambda *a, **k: [])
    monkeypatch.setattr(cells, "find_flags", lambda *a, **k: [])


@pytest.fixture
def smear(tmp_path):
    p = tmp_path / "smear.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(p)
    return p


def test_count_image_labels_boxes_and_the_uncertain_rule_at_its_threshold(smear):
    sc = _counter([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]])
    r = sc.count_image(smear)
    assert (r["width"], r["height"]) == (32, 32)
    assert [c["box"] for c in r["cells"]] == [[4, 4, 12, 12], [20, 16, 28, 24]]
    # 0.6 == uncertain_below: the class is reported (confidence >= threshold)
    assert [c["label"] for c in r["cells"]] == ["a", "b"]
    assert [c["confidence"] for c in r["cells"]] == [0.7, 0.6]
    assert [c["detection"] for c in r["cells"]] == [0.9, 0.8]
    assert [c["found_by"] for c in r["cells"]] == ["detector", "detector"]
    assert r["counts"] == {"a": 1, "b": 1}
    assert [x.shape for x in sc.clf.crops] == [(1, 8, 8, 3), (1, 8, 8, 3)]
    sc = _counter([[0.7, 0.2, 0.1], [0.3, 0.59, 0.11]])
    r = sc.count_image(smear)
    assert [c["label"] for c in r["cells"]] == ["a", "uncertain"]
    assert r["cells"][1]["class"] == "b" and r["counts"] == {"a": 1, "uncertain": 1}


def test_count_image_applies_the_temperature(smear):
    sc = _counter([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]], uncertain_below=0.6, temperature=2.0)
    r = sc.count_image(smear)
    # softmax(log p / 2) = sqrt(p) / sum(sqrt(p)): 0.8367 / 1.6001 = 0.5229 < 0.6 -> uncertain
    assert [c["confidence"] for c in r["cells"]] == [0.5229, 0.5229]
    assert [c["label"] for c in r["cells"]] == ["uncertain", "uncertain"]


def test_apply_temperature_divides_the_logits():
    p = np.array([[0.7, 0.2, 0.1]])
    soft = cal.apply_temperature(p, 2.0)
    s = np.sqrt(p) / np.sqrt(p).sum()
    np.testing.assert_allclose(soft, s, rtol=1e-9)
    sharp = cal.apply_temperature(p, 0.5)
    np.testing.assert_allclose(sharp, p**2 / (p**2).sum(), rtol=1e-9)
    assert soft[0, 0] < 0.7 < sharp[0, 0]  # T > 1 softens, T < 1 sharpens
    assert cal.apply_temperature(p, 1.0) is p
    np.testing.assert_allclose(cal.apply_temperature(np.array([[1.0, 0.0]]), 1.5).sum(), 1.0)


def test_fit_temperature_direction():
    # overconfident: 0.98 confidence, 70 % right -> soften (T > 1)
    p = np.tile([0.98, 0.01, 0.01], (10, 1))
    y = np.array([0] * 7 + [1] * 3)
    t_over = cal.fit_temperature(p, y)
    assert 2.0 < t_over <= 5.0
    # underconfident: 0.5 confidence, always right -> sharpen to the floor of the grid
    q = np.tile([0.5, 0.3, 0.2], (10, 1))
    assert cal.fit_temperature(q, np.zeros(10, int)) == pytest.approx(0.5)
    # the answer is one of 60 log-spaced temperatures from 0.5 to 5 (a very overconfident set: 5 itself)
    grid = np.exp(np.linspace(np.log(0.5), np.log(5.0), 60))
    assert t_over in grid
    worse = np.tile([0.9999, 0.00005, 0.00005], (10, 1))
    assert cal.fit_temperature(worse, np.array([0] * 4 + [1] * 6)) == pytest.approx(5.0)


CONF = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55])
OK = np.array([1, 1, 1, 0, 1, 0, 1], bool)


@pytest.mark.parametrize(
    "target, want",
    [
        (0.95, (0.85, 1.0, 3 / 7, True)),
        (0.8, (0.7, 0.8, 5 / 7, True)),
        (0.7, (0.5, 5 / 7, 1.0, True)),  # the floor: everything accepted already reaches 0.7
    ],
)
def test_choose_threshold_reaches_its_target(target, want):
    c = cal.choose_threshold(CONF, OK, target)
    assert (c.threshold, c.accuracy, c.coverage, c.reached) == pytest.approx(want)


def test_choose_threshold_unreachable_target_and_grid():
    c = cal.choose_threshold(CONF, OK, 1.01)  # best accepted accuracy keeping >= 50 %: 0.8 at 0.7
    assert (c.threshold, c.accuracy, c.coverage, c.reached) == pytest.approx((0.7, 0.8, 5 / 7, False))
    c = cal.choose_threshold(CONF, OK, 0.95, candidates=EXPORT_THRESHOLD_GRID)
    assert c.threshold == pytest.approx(0.81) and c.reached  # lowest grid value above 0.80
    c = cal.choose_threshold(np.array([0.6, 0.6]), np.array([False, False]), 0.9)
    assert (c.threshold, c.accuracy, c.coverage, c.reached) == (0.5, 0.0, 1.0, False)
    c = cal.choose_threshold(np.array([0.3]), np.array([True]), 0.9)  # nothing above the floor
    assert (c.threshold, c.accuracy, c.coverage, c.reached) == (0.0, 1.0, 1.0, False)


def test_square_crop_geometry():
    a = np.zeros((80, 100, 3), np.uint8)
    a[20:60, 0:40] = 255
    img = Image.fromarray(a)
    c = cnt.square_crop(img, [10, 20, 30, 60])  # 20 x 40 box: a 40 px square around its centre (20, 40)
    assert c.size == (40, 40) and np.asarray(c).min() == 255
    c = cnt.square_crop(img, [0, 0, 10, 30])  # centre (5, 15), side 30: 10 px off the left edge, black
    assert c.size == (30, 30)
    ca = np.asarray(c)
    assert ca[:, :10].max() == 0 and ca[20:, 10:].min() == 255 and ca[:20, 10:].max() == 0
    assert cnt.square_crop(img, [50, 10, 61, 20]).size == (11, 11)


def test_summarize_percentages_with_and_without_uncertain():
    rep = cnt.summarize([{"counts": {"a": 2, "uncertain": 1}}, {"counts": {"b": 1}}, {"counts": {}}], LABELS)
    assert rep["totals"] == {"a": 2, "b": 1, "c": 0, "uncertain": 1}
    assert rep["percent"] == {"a": 50.0, "b": 25.0, "c": 0.0, "uncertain": 25.0}
    rep = cnt.summarize([{"counts": {"a": 1, "b": 3}}], LABELS)
    assert rep["percent"] == {"a": 25.0, "b": 75.0, "c": 0.0, "uncertain": 0.0}
    assert cnt.summarize([], LABELS)["percent"] == {"a": 0.0, "b": 0.0, "c": 0.0, "uncertain": 0.0}
    # a label the classifier does not list (an older report) is added up too
    rep = cnt.summarize([{"counts": {"zzz": 2, "a": 1}}, {"counts": {"zzz": 2}}], LABELS)
    assert rep["totals"] == {"a": 1, "b": 0, "c": 0, "uncertain": 0, "zzz": 4}
    assert rep["percent"]["zzz"] == 80.0


def test_csv_and_json_columns_read_back(tmp_path):
    images = [
        {"file": "x.png", "width": 32, "height": 24, "cells": [{}, {}, {}], "counts": {"a": 2, "uncertain": 1}},
        {"file": "bad.png", "cells": [], "counts": {}, "error": "bad.png: not an image"},
    ]
    rep = cnt.summarize(images, LABELS)
    cnt.write_outputs(rep, LABELS, tmp_path / "r.json", tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "width", "height", "cells", "a", "b", "c", "uncertain", "error"]
    assert rows[1] == ["x.png", "32", "24", "3", "2", "0", "0", "1", ""]
    # an unread file has no counts (blank, as in classify's CSV), not 0 WBCs
    assert rows[2] == ["bad.png", "", "", "", "", "", "", "", "bad.png: not an image"]
    assert (tmp_path / "r.json").read_text() == json.dumps(rep, indent=2) + "\n"
    cnt.write_outputs(rep, LABELS, None, None)  # nothing asked, nothing written, no error
    # a row with nothing but a file and an error still makes a full CSV row
    cnt.write_outputs({"images": [{"file": "z.png", "error": "e"}]}, LABELS, None, tmp_path / "z.csv")
    with open(tmp_path / "z.csv", newline="") as fh:
        assert list(csv.reader(fh))[1] == ["z.png", "", "", "", "", "", "", "", "e"]


def test_count_paths_reports_bad_files_and_counts_good_ones(smear, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    sc = _counter([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    res = cnt.count_paths(sc, [smear, bad], out=tmp_path / "ann", csv_out=tmp_path / "c.csv",
                          json_out=tmp_path / "c.json")
    assert res.report["totals"] == {"a": 1, "b": 0, "c": 1, "uncertain": 0}
    assert len(res.bad) == 1 and res.bad[0].startswith(str(bad))
    assert res.report["images"][1] == {"file": str(bad), "cells": [], "counts": {}, "error": res.bad[0]}
    assert (tmp_path / "c.csv").read_text().count("\n") == 3
    assert json.loads((tmp_path / "c.json").read_text()) == res.report
    assert res.report["models"] == {"detector": "stand-in-detector.tflite", "classifier": "stand-in-classifier.tflite"}
    assert res.report["settings"] == {"detection": "whole smear resized", "uncertain below": 0.6, "temperature": 1.0,
                                      "interpreter": "stand-in 0"}
    ann = tmp_path / "ann" / "smear.count.jpg"
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["smear.count.jpg"]
    a = np.asarray(Image.open(ann).convert("RGB"))
    assert a.shape == (32, 32, 3) and (a != 128).any()  # the boxes are drawn on the smear


# ---- threshold selection reads val, never test ----------------------------------------------------
class _NoTest(Dataset):
    def split(self, name):
        if name == "test":
            raise AssertionError("calibration read the test split")
        return super().split(name)


def _probs_split(conf, correct):
    conf, correct = np.asarray(conf, float), np.asarray(correct, bool)
    probs = np.column_stack([conf, 1 - conf])  # class 0 has the confidence
    return Split(probs, np.where(correct, 0, 1), [str(i) for i in range(len(conf))])


class _EchoClassifier:
    """predict(images) returns the 'images': each dataset row is already a probability vector."""

    def __init__(self, path, spec=None, **kw):
        self.spec = spec or ModelSpec.load(path.with_suffix(".json") if hasattr(path, "with_suffix") else path)

    def predict(self, images):
        return np.asarray(images, float)


def test_calibrate_classifier_fits_on_val_and_never_reads_test(tmp_path, monkeypatch):
    import edge_wbc.data
    import edge_wbc.runtime

    spec = ModelSpec("classification", 8, 8, ("x", "y"), dataset="toy", split_seed=5)
    spec.save(tmp_path / "m.json")
    (tmp_path / "m.tflite").write_bytes(b"")
    val = _probs_split(CONF, OK)
    ds = _NoTest("toy", ("x", "y"), {"train": val, "val": val, "test": val})
    calls = []

    def load_dataset(*a, **k):
        calls.append((a, k))
        return ds

    def classifier(p):
        calls.append(p)
        return _EchoClassifier(tmp_path / "m.tflite")

    monkeypatch.setattr(edge_wbc.data, "load_dataset", load_dataset)
    monkeypatch.setattr(edge_wbc.runtime, "TFLiteClassifier", classifier)
    res = cal.calibrate_classifier(tmp_path / "m.tflite", target=0.8, data="DATA")
    assert calls == [tmp_path / "m.tflite", (("toy", spec), {"data": "DATA", "seed": 5})]
    t = cal.fit_temperature(val.images, val.labels)
    q = cal.apply_temperature(val.images, t)
    want = cal.choose_threshold(q.max(1), q.argmax(1) == val.labels, 0.8)
    assert want != cal.choose_threshold(q.max(1), q.argmax(1) == val.labels)  # the target matters here
    assert res.temperature == t and res.choice == want and res.choice.reached and res.n == 7
    assert (res.spec_path, res.target) == (tmp_path / "m.json", 0.8)
    m = ModelSpec.load(tmp_path / "m.json").metrics
    assert m["temperature"] == t and m["uncertain_below"] == want.threshold
    assert {k: v for k, v in m["uncertain_val"].items() if k != "basis"} == {
        "n": 7, "accepted_accuracy": want.accuracy, "accepted_share": want.coverage, "target": 0.8}
    assert "val split" in m["uncertain_val"]["basis"]


def test_export_threshold_is_chosen_on_val_not_test(tmp_path, monkeypatch):
    import edge_wbc.data
    import edge_wbc.runtime
    from edge_wbc.export.android import evaluate

    spec = ModelSpec("classification", 8, 8, ("x", "y"), dataset="toy")
    val = _probs_split([0.9, 0.7, 0.95], [True, False, True])  # 0.71 is the lowest grid value that is 100 %
    test = _probs_split([0.9, 0.95, 0.6, 0.55], [False, True, True, True])  # here it would be 0.91
    ds = Dataset("toy", ("x", "y"), {"train": val, "val": val, "test": test})
    monkeypatch.setattr(edge_wbc.data, "load_dataset", lambda *a, **k: ds)
    monkeypatch.setattr(edge_wbc.runtime, "TFLiteClassifier", _EchoClassifier)
    rep = evaluate(tmp_path / "m.tflite", spec, None, None, 0.99)
    assert rep["uncertain"]["threshold"] == pytest.approx(0.71)
    assert "val split" in rep["uncertain"]["basis"]
    assert rep["test"] == {"dataset": "toy", "split": "test", "n": 4, "accuracy": 0.75,
                           "macro_f1": pytest.approx(rep["test"]["macro_f1"])}
    assert rep["uncertain"]["val"]["coverage"] == pytest.approx(2 / 3)
    assert rep["uncertain"]["test"] == {"n": 4, "coverage": 0.5, "accuracy_reported": 0.5, "uncertain": 2,
                                        "errors_reported": 1, "errors_total": 1}
    rep = evaluate(tmp_path / "m.tflite", spec, None, 0.8, 0.99)  # --threshold: taken as given
    assert rep["uncertain"]["threshold"] == 0.8 and rep["uncertain"]["target_accuracy"] is None


# ---- edges that mutation testing showed unpinned (scripts/mutation.sh) ----------------------------
def test_apply_temperature_clips_zero_probabilities_at_1e_4():
    # a zero probability counts as 1e-4 before the log: softmax(log [1, 1e-4] / 2) = [1, 0.01] / 1.01
    q = cal.apply_temperature(np.array([[1.0, 0.0]]), 2.0)
    np.testing.assert_allclose(q, [[1 / 1.01, 0.01 / 1.01]], rtol=1e-9)


def test_apply_temperature_sharp_on_float32_stays_finite(no_warnings):
    # T = 0.01 on float32: log(0.34) / 0.01 = -108 underflows exp() unless each row's own maximum is
    # subtracted first (the usual log-sum-exp shift); row 0: (0.33 / 0.34) ** 100 = 0.0505 of the top
    p = np.array([[0.34, 0.33, 0.33], [1.0, 0.0, 0.0]], np.float32)
    q = cal.apply_temperature(p, 0.01)
    r = (0.33 / 0.34) ** 100
    np.testing.assert_allclose(q[0], [1 / (1 + 2 * r), r / (1 + 2 * r), r / (1 + 2 * r)], rtol=1e-3)
    np.testing.assert_allclose(q[1], [1.0, 0.0, 0.0], atol=1e-30)


def test_choose_threshold_best_fallback_may_keep_exactly_half():
    # target unreachable; threshold 0.8 keeps exactly half (2 of 4) at accuracy 0.5, the best of those
    # keeping >= 50 %: it is the fallback (0.5 keeps all at 0.25)
    conf = np.array([0.9, 0.8, 0.6, 0.55])
    ok = np.array([False, True, False, False])
    c = cal.choose_threshold(conf, ok, 0.99)
    assert (c.threshold, c.accuracy, c.coverage, c.reached) == (0.8, 0.5, 0.5, False)


def test_choose_threshold_on_nothing_is_nan_without_warnings(no_warnings):
    c = cal.choose_threshold(np.array([]), np.array([], bool), 0.9)
    assert c.threshold == 0.0 and np.isnan(c.accuracy) and (c.coverage, c.reached) == (1.0, False)


def test_export_rule_effect_counts():
    from edge_wbc.export.android import _at

    conf = np.array([0.9, 0.7, 0.7, 0.4])
    ok = np.array([True, False, True, False])
    # at 0.7: a confidence exactly at the threshold is accepted (as UncertainRule.apply and the device do)
    assert _at(conf, ok, 0.7) == {"n": 4, "coverage": 0.75, "accuracy_reported": pytest.approx(2 / 3),
                                  "uncertain": 1, "errors_reported": 1, "errors_total": 2}
    assert _at(conf, ok, 0.8) == {"n": 4, "coverage": 0.25, "accuracy_reported": 1.0, "uncertain": 3,
                                  "errors_reported": 0, "errors_total": 2}
    # nothing accepted: no accuracy to report (JSON null, not NaN)
    assert _at(conf, ok, 0.95) == {"n": 4, "coverage": 0.0, "accuracy_reported": None, "uncertain": 4,
                                   "errors_reported": 0, "errors_total": 2}


# ---- SmearCounter: the stages, the scale-aware choice of detector, tiled detection, the report ---------
def _fs(um=0.3, flags=(), source="given"):
    from edge_wbc.tasks.scale import FieldScale

    return FieldScale(um, source, 1.0, 0.0, list(flags))


@pytest.fixture
def fake_scale(monkeypatch):
    """field_scale replaced: records its arguments, answers the FieldScale set in ``box[0]``."""
    seen, box = [], [_fs()]

    def field_scale(img, fallback_um, given=None):
        seen.append((img.size, fallback_um, given))
        return box[0]

    monkeypatch.setattr(cnt, "field_scale", field_scale)
    return seen, box


def test_count_image_passes_the_scale_times_each_stage_and_names_the_file(fake_scale, tmp_path):
    seen, _ = fake_scale
    sc = _counter([[0.7, 0.2, 0.1], [0.8, 0.1, 0.1]])
    sc.um_per_px = 0.3
    img = Image.fromarray(np.full((32, 32, 3), 128, np.uint8))
    path = tmp_path / "never-written.png"  # the image is given: the file is not read
    timings = {"decode": 5.0}
    import time

    t0 = time.perf_counter()
    r = sc.count_image(path, img, timings=timings)
    wall = time.perf_counter() - t0
    # the detector's own field in µm per pixel of this image: 0.25 µm/px x 16 px / 32 px; the given scale
    assert seen == [((32, 32), 0.125, 0.3)]
    assert r["file"] == str(path) and (r["width"], r["height"]) == (32, 32)
    assert (r["um_per_px"], r["scale_source"]) == (0.3, "given")
    assert r["counts"] == {"a": 2} and r["flags"] == []
    assert set(timings) == {"decode", "scale", "detect", "classify"}
    assert all(v >= 0 for v in timings.values()) and timings["decode"] >= 5.0  # added to what was there
    assert 0 < sum(timings.values()) - 5.0 <= wall


def test_count_image_detection_is_rounded_to_4_digits_and_no_cells_is_flagged(fake_scale, smear):
    sc = _counter([[0.7, 0.2, 0.1]])
    sc.det.prob = np.zeros((16, 16))
    sc.det.prob[2:6, 2:6] = 0.654321
    r = sc.count_image(smear)
    assert [c["detection"] for c in r["cells"]] == [0.6543] and r["flags"] == []
    sc.det.prob = np.zeros((16, 16))
    r = sc.count_image(smear)
    assert r["cells"] == [] and r["counts"] == {} and r["flags"] == ["no_cells"]


class StandInCellModel:
    """The cell segmenter: a WBC map of whatever it is given (one blob at a quarter of each side)."""

    def __init__(self):
        self.spec = ModelSpec("segmentation", 16, 16, ("wbc",))
        self.seen = []

    def _map(self, w, h):
        m = np.zeros((h, w, 1))
        m[h // 4 : h // 2, w // 4 : w // 2] = 0.9
        return m

    def predict_tiled(self, img, window=None):
        self.seen.append(("tiled", img.size, window))
        return self._map(*img.size)

    def predict_image(self, img):
        self.seen.append(("image", img.size))
        return self._map(*img.size)


def test_count_image_auto_mode_branches(fake_scale, smear):
    _, box = fake_scale
    # not a smear field: nothing detected, flagged
    sc = _counter([])
    sc.tile = None
    box[0] = _fs(flags=["no_red_cells"], source="fallback")
    r = sc.count_image(smear)
    assert r["cells"] == [] and r["flags"] == ["no_red_cells", "no_cells"] and sc.det.seen == []
    # a single-cell crop with a cell model: its largest WBC component, the scale from its size
    sc = _counter([[0.7, 0.2, 0.1]])
    sc.tile, sc.cell, sc.cell_um = None, StandInCellModel(), 0.5
    box[0] = _fs(flags=["single_cell"], source="fallback")
    r = sc.count_image(smear)
    assert [c["box"] for c in r["cells"]] == [[8, 8, 16, 16]] and sc.det.seen == []
    assert r["um_per_px"] == round(12.0 / np.sqrt(4 * 64 / np.pi), 5)
    assert r["scale_note"] == "single-cell crop: scale from the WBC's own size (12 µm across assumed)"
    # a single-cell crop without a cell model: the smear detector on the whole image
    sc = _counter([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    sc.tile = None
    box[0] = _fs(flags=["single_cell"], source="fallback")
    r = sc.count_image(smear)
    assert [c["box"] for c in r["cells"]] == [[4, 4, 12, 12], [20, 16, 28, 24]] and "scale_note" not in r
    # a usable field at 1 µm/px: 8 x the detector's field, so the cell model in windows at its 0.5 µm/px
    sc = _counter([[0.7, 0.2, 0.1]])
    sc.tile, sc.cell, sc.cell_um = None, StandInCellModel(), 0.5
    box[0] = _fs(um=1.0, source="estimated")
    r = sc.count_image(smear)
    assert sc.cell.seen == [("tiled", (64, 64), None)] and sc.det.seen == []
    assert [c["box"] for c in r["cells"]] == [[8, 8, 16, 16]]  # the blob at 16..32 of 64 px, halved


@pytest.mark.parametrize(
    "size, um, tile, want",
    [
        ((32, 32), 0.25, None, "resized"),  # 2 x the detector's field in each direction: the edge, resized
        ((32, 32), 0.0625, None, "resized"),  # 1/2 x: the other edge
        ((32, 32), 0.26, None, "windowed"),  # just past 2 x
        ((32, 32), 0.06, None, "windowed"),  # just under 1/2 x
        ((64, 16), 0.25, None, "windowed"),  # 4 x wide, 1 x high: one side out is out
        ((16, 64), 0.25, None, "windowed"),
        ((64, 16), 0.25, False, "resized"),  # expert mode: the whole field resized, whatever the scale
        ((32, 32), None, None, "resized"),  # no scale: resized
    ],
)
def test_detect_chooses_the_detector_by_the_field_size(size, um, tile, want):
    sc = _counter([])
    sc.tile, sc.cell, sc.cell_um = tile, StandInCellModel(), 0.5
    sc._resized = lambda img: ("resized", img.size)
    sc.windowed = lambda model, img, s: ("windowed", model is sc.cell, img.size, s)
    img = Image.new("RGB", size)
    got = sc.detect(img, um)
    assert got == (("resized", size) if want == "resized" else ("windowed", True, size, um / 0.5))
    sc.cell = None  # without a cell model the detector always gets the field resized
    assert sc.detect(img, um) == ("resized", size)


def test_detect_tiled_uses_the_window_for_tiles_and_the_speck_size():
    class TiledDetector(StandInDetector):
        def predict_tiled(self, img, window=None):
            self.seen.append((img.size, window))
            return self.prob[..., None]

        def window_shape(self, window=None):
            return (window, window) if window else (16, 16)

    prob = np.zeros((32, 32))
    prob[2:4, 2:4] = 0.9  # 4 px: kept with an 8 px window (speck limit 8 * 8 / 32 = 2 px), not with 16 (8 px)
    prob[10, 10] = 0.8  # 1 px: a speck
    prob[20:22, 20:22] = 0.5  # at the threshold: not WBC
    prob[26:30, 26:28] = 0.6  # 8 px
    sc = _counter([])
    sc.det, sc.tile, sc.window = TiledDetector(prob), True, 8
    img = Image.new("RGB", (32, 32))
    out = sc.detect(img)
    assert sc.det.seen == [((32, 32), 8)]
    assert out == [([2, 2, 4, 4], pytest.approx(0.9)), ([26, 26, 28, 30], pytest.approx(0.6))]
    sc.window = None
    assert sc.detect(img) == [([26, 26, 28, 30], pytest.approx(0.6))]


def test_summarize_differential_of_answered_cells_and_reliability():
    rep = cnt.summarize([{"counts": {"a": 3, "uncertain": 2}}, {"counts": {"b": 1}}], LABELS, min_answered=4)
    assert {k: rep[k] for k in ("n_answered", "n_uncertain", "differential", "reliable", "min_answered")} == {
        "n_answered": 4, "n_uncertain": 2, "differential": {"a": 75.0, "b": 25.0, "c": 0.0}, "reliable": True,
        "min_answered": 4}
    assert cnt.summarize([{"counts": {"a": 3}}], LABELS, min_answered=4)["reliable"] is False
    rep = cnt.summarize([{"counts": {"uncertain": 2}}], LABELS)
    assert (rep["n_answered"], rep["differential"]) == (0, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert cnt.summarize([{"counts": {"a": 1}}], LABELS)["n_uncertain"] == 0


def test_count_paths_report_images_are_the_numbered_overlays(smear, tmp_path):
    from edge_wbc.defaults import REPORT_FULL_PX
    from edge_wbc.tasks.report import FieldImages, draw_cells

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    sc = _counter([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    res = cnt.count_paths(sc, [smear, bad], report_images=True)  # no out folder: nothing written
    assert res.report["images"][0]["file"] == str(smear)
    want = FieldImages._jpeg(draw_cells(Image.open(smear), res.report["images"][0]["cells"], numbered=True),
                             REPORT_FULL_PX)
    assert res.images.images == [want, None]
    assert cnt.count_paths(_counter([[0.7, 0.2, 0.1]] * 2), [smear]).images is None  # not asked: none kept


def _calibrate_on(tmp_path, monkeypatch, val, spec, target):
    import edge_wbc.data
    import edge_wbc.runtime
    import edge_wbc.tasks.cellsets as cellsets

    spec.save(tmp_path / "m.json")
    (tmp_path / "m.tflite").write_bytes(b"")
    ds = _NoTest("toy", ("x", "y"), {"train": val, "val": val, "test": val})
    seen = []

    def loader(kind):
        def load(*a, **k):
            seen.append(kind)
            return ds
        return load

    monkeypatch.setattr(edge_wbc.data, "load_dataset", loader("images"))
    monkeypatch.setattr(cellsets, "load_for_spec", loader("cell crops"))
    monkeypatch.setattr(edge_wbc.runtime, "TFLiteClassifier", lambda p: _EchoClassifier(tmp_path / "m.tflite"))
    return cal.calibrate_classifier(tmp_path / "m.tflite", target=target), seen


def test_calibrate_correctness_is_each_rows_argmax_and_the_basis_says_the_target(tmp_path, monkeypatch):
    # predictions of both classes: right = argmax of each row equals its label
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45], [0.1, 0.9]])
    labels = np.array([0, 1, 0, 1, 0, 1])  # rows 2 and 3 wrong
    val = Split(probs, labels, [str(i) for i in range(6)])
    spec = ModelSpec("classification", 8, 8, ("x", "y"), dataset="toy")
    res, seen = _calibrate_on(tmp_path, monkeypatch, val, spec, 0.9)
    q = cal.apply_temperature(probs, res.temperature)
    assert res.choice == cal.choose_threshold(q.max(1), q.argmax(1) == labels, 0.9) and res.choice.reached
    assert res.choice.accuracy == 1.0 and seen == ["images"]
    basis = ModelSpec.load(tmp_path / "m.json").metrics["uncertain_val"]["basis"]
    assert basis == ("edge-wbc calibrate: temperature minimizing the val NLL, then the lowest threshold >= 0.5 at "
                     "which the calibrated predictions it reports on the toy val split are at least 0.9 accurate")
    res, _ = _calibrate_on(tmp_path, monkeypatch, val, spec, 1.01)
    assert not res.choice.reached
    assert ModelSpec.load(tmp_path / "m.json").metrics["uncertain_val"]["basis"].endswith(
        "are at least 1.01 accurate (not reached)")


def test_calibrate_a_field_model_reads_its_cell_crops(tmp_path, monkeypatch):
    spec = ModelSpec("classification", 8, 8, ("x", "y"), dataset="toy", crop="wbc", crop_model="wbc_unet",
                     crop_ratio=2.0)
    _, seen = _calibrate_on(tmp_path, monkeypatch, _probs_split(CONF, OK), spec, 0.8)
    assert seen == ["cell crops"]


def test_uncertain_rule_compares_in_float32_like_the_device():
    # 0.599999999 rounds up to 0.6 in float32: accepted at threshold 0.6 (a float64 comparison would call it uncertain)
    q, k = UncertainRule(1.0, 0.6).apply(np.array([[0.599999999, 0.400000001]]))
    assert q.dtype == np.float32 and k.tolist() == [0]
    assert UncertainRule(1.0, 0.6).apply(np.array([[0.5999, 0.4001]]))[1].tolist() == [-1]


def test_csv_is_opened_with_newline_empty_as_the_csv_module_needs(tmp_path, monkeypatch):
    # newline="" keeps the csv module's \r\n row ends as written on every platform (with the default, Windows
    # would write \r\r\n); on Linux both give the same bytes, so the call itself is checked
    seen = []
    real = cnt.atomic_open

    def atomic_open(path, *a, **k):
        seen.append(k.get("newline", "default"))
        return real(path, *a, **k)

    monkeypatch.setattr(cnt, "atomic_open", atomic_open)
    cnt.write_outputs(cnt.summarize([{"file": "x.png", "counts": {}}], LABELS), LABELS, None, tmp_path / "r.csv")
    assert seen == [""]
    assert (tmp_path / "r.csv").read_bytes().startswith(b"file,width,height,cells,a,b,c,uncertain,error\r\n")


def test_apply_temperature_of_one_probability_vector():
    p = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(cal.apply_temperature(p, 2.0), cal.apply_temperature(p[None], 2.0)[0], rtol=1e-12)
    np.testing.assert_allclose(cal.apply_temperature(p, 2.0), np.sqrt(p) / np.sqrt(p).sum(), rtol=1e-9)


def test_uncertain_rule_applies_row_by_row():
    q, k = UncertainRule(1.0, 0.6).apply(np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.5, 0.2]]))
    assert k.tolist() == [0, 2, -1] and q.shape == (3, 3)


def test_count_paths_decodes_each_file_once(smear, monkeypatch):
    calls = []
    real = cnt.load_image

    def load_image(p):
        calls.append(p)
        return real(p)

    monkeypatch.setattr(cnt, "load_image", load_image)
    cnt.count_paths(_counter([[0.7, 0.2, 0.1]] * 2), [smear])
    assert calls == [smear]
