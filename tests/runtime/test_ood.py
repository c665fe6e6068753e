"""The OOD score: Mahalanobis statistics by hand, the threshold rule, the stored form and its errors,
and a converted model with a features output (int8) read by the runtime."""

import json
import shutil

import numpy as np
import pytest

from edge_wbc.errors import ModelError
from edge_wbc.runtime.ood import OODStats, choose_threshold, fit_ood


def test_fit_ood_whitens_the_tied_covariance_and_scores_the_nearest_class(rng):
    means = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    y = np.repeat([0, 1], 400)
    f = means[y] + rng.normal(size=(800, 3)) * np.array([1.0, 2.0, 0.5])
    mu, w = fit_ood(f, y, 2, shrink=0.0)
    np.testing.assert_allclose(mu, [f[y == 0].mean(0), f[y == 1].mean(0)])
    c = f - mu[y]
    cov = c.T @ c / (800 - 2)
    np.testing.assert_allclose(w @ w.T, np.linalg.inv(cov), rtol=1e-8, atol=1e-10)
    s = OODStats(mu, w, 10.0)
    q = np.array([[4.0, 1.0, 0.2], [100.0, 0.0, 0.0]])
    want = [min((v - m) @ np.linalg.inv(cov) @ (v - m) for m in mu) for v in q]
    np.testing.assert_allclose(s.score(q), want, rtol=1e-8)
    assert s.score(q[0]) == pytest.approx(want[0])  # one vector in, a number out
    assert list(s.is_ood(q)) == [False, True]


def test_estimated_shift_follows_the_class_mix_of_the_batch(rng):
    """A batch of one class is moved onto that class's mean, not onto the mean of all classes."""
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    kernel = means.T * 2.0  # a head that scores by the distance to each mean
    bias = -(means ** 2).sum(1)
    s = OODStats(means, np.eye(2), 10.0, None, kernel, bias, means.mean(0))
    batch = means[[1] * 50] + rng.normal(size=(50, 2)) * 0.3 + np.array([1.0, -1.0])  # class 1, off by (1, -1)
    shift, pi = s.estimate_shift(batch)
    assert pi.argmax() == 1 and pi[1] > 0.95
    np.testing.assert_allclose(shift, pi @ means - batch.mean(0))
    np.testing.assert_allclose(shift, [-1.0, 1.0], atol=0.4)  # the global-mean shift would be about (-3, 3)
    assert (s.head_probs(batch + shift).argmax(1) == 1).all()
    g, _ = s.estimate_shift(batch, "mean")  # the global mean: pulled towards the other two classes
    np.testing.assert_allclose(g, means.mean(0) - batch.mean(0))
    assert (s.head_probs(batch + g).argmax(1) == 1).mean() < 0.5
    with pytest.raises(ValueError, match="shift kind 'median': valid kinds are mean, em"):
        s.estimate_shift(batch, "median")


def test_shrinkage_pulls_the_covariance_to_its_mean_diagonal(rng):
    y = np.zeros(50, int)
    f = rng.normal(size=(50, 2)) * np.array([1.0, 1e-4])  # a direction with almost no variance
    _, w0 = fit_ood(f, y, 1, shrink=0.0)
    _, w5 = fit_ood(f, y, 1, shrink=0.5)
    c = np.cov(f.T, ddof=1)
    want = np.linalg.inv(0.5 * c + 0.5 * np.trace(c) / 2 * np.eye(2))
    np.testing.assert_allclose(w5 @ w5.T, want, rtol=1e-6)
    assert np.linalg.norm(w5 @ w5.T) < np.linalg.norm(w0 @ w0.T) / 100


def test_fit_ood_refuses_a_class_without_training_features():
    with pytest.raises(ValueError, match=r"no training features for classes \[2\]"):
        fit_ood(np.zeros((4, 3)), np.array([0, 1, 0, 1]), 3)


def test_threshold_answers_the_quantile_of_every_source():
    val = {"a": np.arange(1, 101, dtype=float), "b": np.arange(1, 11, dtype=float) * 100}
    t, basis = choose_threshold(val, 0.9)
    assert t == pytest.approx(np.quantile(val["b"], 0.9)) == pytest.approx(910.0)  # the larger source quantile
    assert basis["per_source_quantile"]["a"] == pytest.approx(90.1)
    assert basis["val_flagged"] == {"a": 0.0, "b": 0.1}
    assert basis["split"] == "val" and basis["val_n"] == {"a": 100, "b": 10}
    with pytest.raises(ValueError, match="every source needs val scores"):
        choose_threshold({"a": np.array([])})


def test_stored_form_round_trips_and_bad_forms_are_one_line_errors():
    s = OODStats(np.ones((2, 3)), np.eye(3) * 2, 7.5, {"note": "x"})
    d = s.to_dict()
    assert (d["kind"], d["dim"], d["classes"], d["threshold"]) == ("mahalanobis", 3, 2, 7.5)
    back = OODStats.from_dict(json.loads(json.dumps(d)))
    np.testing.assert_array_equal(back.whiten, s.whiten)
    assert back.score(np.zeros(3)) == pytest.approx(12.0)  # ||(0 - 1) * 2||^2 over 3 dims
    assert OODStats.from_dict(None) is None and OODStats.from_dict({}) is None
    with pytest.raises(ModelError, match=r"m.json: OOD statistics of kind 'energy': the only kind is 'mahalanobis'"):
        OODStats.from_dict({**d, "kind": "energy"}, "m.json")
    with pytest.raises(ModelError, match=r"means \(2, 3\) and whiten \(4, 4\) do not fit"):
        OODStats.from_dict({**d, "whiten": np.eye(4).tolist()})
    with pytest.raises(ModelError, match="OOD threshold -1.0 is not a positive number"):
        OODStats.from_dict({**d, "threshold": -1})
    with pytest.raises(ModelError, match="need means, whiten and threshold"):
        OODStats.from_dict({"kind": "mahalanobis", "means": [[1.0]]})
    with pytest.raises(ModelError, match="features have 5 values but the OOD statistics have 3"):
        s.score(np.zeros(5))
    with pytest.raises(ModelError, match=r"are for 2 classes x 3 features, the model has 8 classes x 16 features"):
        s.check(16, 8)


@pytest.fixture(scope="module")
def tiny_ood(tiny_model_dir, data_root, tmp_path_factory):
    """The tiny model converted to int8 with a features output and its OOD statistics."""
    from edge_wbc.converters import convert_model_dir

    d = tmp_path_factory.mktemp("tiny_ood")
    for f in ("model.keras", "model.json", "metrics.json"):
        shutil.copy(tiny_model_dir / f, d / f)
    r = convert_model_dir(d, "int8", data=data_root, calib=100, allow_chance=True, min_agreement=0.0,
                          ood=True, log=lambda s: None)
    return d, r


def test_int8_model_with_features_output_scores_like_the_keras_features(tiny_ood, bloodmnist):
    from edge_wbc.converters.pipeline import load_keras, with_features
    from edge_wbc.runtime import TFLiteClassifier

    d, report = tiny_ood
    clf = TFLiteClassifier(d / "int8.tflite")
    assert clf.features_output is not None and int(clf.features_output["shape"][-1]) == 16  # tiny's GAP
    # the probabilities are the first output: MediaPipe's first classification head
    assert [int(o["shape"][-1]) for o in clf.interpreter.get_output_details()] == [8, 16]
    assert clf.ood is not None and clf.ood.means.shape == (8, 16) and clf.ood_off_reason() is None
    spec_ood = json.loads((d / "int8.json").read_text())["metrics"]["ood"]
    assert spec_ood["basis"]["split"] == "val" and spec_ood["threshold"] == pytest.approx(report["ood"]["threshold"])
    x = bloodmnist.split("test").images[:64]
    probs, feats = clf.predict_features(x)
    np.testing.assert_array_equal(probs, clf.predict(x))  # the extra output changes no probability
    kp, kf = with_features(load_keras(d)).predict(x.astype(np.float32), verbose=0)
    # int8 features follow the float ones; the decisions mostly agree
    assert np.corrcoef(feats.ravel(), kf.ravel())[0, 1] > 0.95
    agree = (clf.ood.is_ood(feats) == clf.ood.is_ood(kf)).mean()
    assert agree >= 0.9
    noise = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 3), dtype=np.uint8)
    assert clf.ood.is_ood(clf.predict_features(noise)[1]).mean() > clf.ood.is_ood(feats).mean()


def test_model_and_statistics_that_do_not_fit_are_clear_errors(tiny_ood, tiny_converted, tmp_path):
    from edge_wbc.runtime import TFLiteClassifier

    d, _ = tiny_ood
    ood = json.loads((d / "int8.json").read_text())["metrics"]["ood"]
    # statistics in the JSON of a model without a features output
    plain = json.loads((tiny_converted / "int8.json").read_text())
    shutil.copy(tiny_converted / "int8.tflite", tmp_path / "m.tflite")
    (tmp_path / "m.json").write_text(json.dumps({**plain, "metrics": {**plain.get("metrics", {}), "ood": ood}}))
    with pytest.raises(ModelError, match="has OOD statistics but the model has no features output"):
        TFLiteClassifier(tmp_path / "m.tflite")
    # statistics of the wrong width for the features output
    bad = {**ood, "means": np.zeros((8, 4)).tolist(), "whiten": np.eye(4).tolist()}
    shutil.copy(d / "int8.tflite", tmp_path / "f.tflite")
    spec = json.loads((d / "int8.json").read_text())
    (tmp_path / "f.json").write_text(json.dumps({**spec, "metrics": {**spec["metrics"], "ood": bad}}))
    with pytest.raises(ModelError, match=r"OOD head kernel \(16, 8\), bias \(8,\), source_mean \(16,\) do not fit "
                                         r"8 classes x 4 features"):
        TFLiteClassifier(tmp_path / "f.tflite")
    del bad["head"]
    (tmp_path / "f.json").write_text(json.dumps({**spec, "metrics": {**spec["metrics"], "ood": bad}}))
    with pytest.raises(ModelError, match=r"f.tflite: OOD statistics are for 8 classes x 4 features, the model has "
                                         r"8 classes x 16 features"):
        TFLiteClassifier(tmp_path / "f.tflite")
    # no statistics: the model loads, and says why OOD is off
    assert "no features output" in TFLiteClassifier(tiny_converted / "int8.tflite").ood_off_reason()
    del spec["metrics"]["ood"]
    (tmp_path / "f.json").write_text(json.dumps(spec))
    assert "no OOD statistics" in TFLiteClassifier(tmp_path / "f.tflite").ood_off_reason()


def test_ood_refused_for_tfmot_modes(tiny_model_dir):
    from edge_wbc.converters import convert_model_dir
    from edge_wbc.converters.modes import ConversionError

    with pytest.raises(ConversionError, match="--ood is not available with --mode qat"):
        convert_model_dir(tiny_model_dir, "qat", ood=True, allow_chance=True, log=lambda s: None)


def test_classify_flags_ood_inputs_and_notes_a_model_without_the_check(tiny_ood, tiny_converted, bloodmnist,
                                                                      tmp_path):
    import csv
    import io

    from PIL import Image
    from typer.testing import CliRunner

    from edge_wbc.cli import app
    from edge_wbc.runtime import TFLiteClassifier
    from edge_wbc.tasks.classify import classify_to_csv

    d, _ = tiny_ood
    rng = np.random.default_rng(1)
    files = []
    for i in range(6):
        f = tmp_path / f"noise{i}.png"
        Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(f)
        files.append(f)
    clf = TFLiteClassifier(d / "int8.tflite")
    buf = io.StringIO()
    classify_to_csv(clf, files, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    scores = clf.ood.score(clf.predict_features(np.stack([np.asarray(Image.open(f)) for f in files]))[1])
    for r, s in zip(rows, scores):  # the flag is exactly the stored rule, and any flag abstains
        assert ("ood" in r["flag"].split("|")) == (s > clf.ood.threshold)
        if r["flag"]:
            assert r["prediction"] == "uncertain"
    assert sum("ood" in r["flag"] for r in rows) >= 4
    res = CliRunner().invoke(app, ["classify", str(files[0]), "-m", str(tiny_converted / "int8.tflite")])
    assert "note: OOD checks are off for int8: the model has no features output (convert it with --ood)" in \
        res.output.replace("\n", " ")
    res = CliRunner().invoke(app, ["classify", str(files[0]), "-m", str(d / "int8.tflite")])
    assert "OOD checks are off" not in res.output


def test_head_in_numpy_reproduces_the_graph_and_feature_adaptation_shifts_to_the_training_mean(
        tiny_ood, tiny_converted, bloodmnist, tmp_path):
    from PIL import Image

    from edge_wbc.runtime import TFLiteClassifier
    from edge_wbc.tasks.adapt import AdaptError, adapt_features

    d, _ = tiny_ood
    clf = TFLiteClassifier(d / "int8.tflite")
    assert clf.ood.head_kernel.shape == (16, 8) and clf.ood.source_mean.shape == (16,) and not clf.adapted
    x = bloodmnist.split("test").images[:40]
    probs, feats = clf.predict_features(x)
    assert (clf.ood.head_probs(feats).argmax(1) == probs.argmax(1)).mean() >= 0.9  # float head on int8 features
    # a "microscope" whose cells are darker: 30 of them, unlabelled
    cells = tmp_path / "cells"
    cells.mkdir()
    dark = (x[:30].astype(np.float32) * 0.6).astype(np.uint8)
    for i, im in enumerate(dark):
        Image.fromarray(im).save(cells / f"c{i:02d}.png")
    r = adapt_features(d / "int8.tflite", cells, tmp_path / "out", log=lambda s: None)
    assert (r["method"], r["images"], r["skipped"]) == ("features", 30, 0)
    ad = TFLiteClassifier(tmp_path / "out" / "int8.tflite")
    assert ad.adapted and ad.ood.adapted["images"] == 30
    raw = clf.predict_features(dark)[1]
    shift, pi = clf.ood.estimate_shift(raw, "mean")
    np.testing.assert_allclose(ad.ood.shift, shift, atol=1e-5)
    assert ad.ood.adapted["shift"] == "mean"  # the default
    assert sum(ad.ood.adapted["class_proportions"].values()) == pytest.approx(1.0, abs=1e-3)
    p2, f2 = ad.predict_features(dark)
    np.testing.assert_allclose(f2.mean(0), clf.ood.source_mean, atol=1e-4)  # the cells now sit on the training mean
    em = adapt_features(d / "int8.tflite", cells, tmp_path / "em", log=lambda s: None, shift_kind="em")
    _, pi_em = clf.ood.estimate_shift(raw, "em")
    f_em = TFLiteClassifier(em["out"]).predict_features(dark)[1]
    np.testing.assert_allclose(f_em.mean(0), pi_em @ clf.ood.means, atol=1e-4)  # onto the class means in its mix
    np.testing.assert_allclose(p2, ad.ood.head_probs(raw + ad.ood.shift), atol=1e-6)
    np.testing.assert_array_equal(ad.predict(dark), p2)  # predict() goes through the same path
    # adapting an adapted bundle starts from the unshifted features (the shift is not added twice)
    r2 = adapt_features(tmp_path / "out" / "int8.tflite", cells, tmp_path / "out2", log=lambda s: None)
    np.testing.assert_allclose(TFLiteClassifier(r2["out"]).ood.shift, ad.ood.shift, atol=1e-5)
    with pytest.raises(AdaptError, match="needs a model converted with --ood"):
        adapt_features(tiny_converted / "int8.tflite", cells, tmp_path / "o3")
    # the same through the CLI, and its usage errors
    from typer.testing import CliRunner

    from edge_wbc.cli import app

    run = CliRunner().invoke
    r = run(app, ["adapt", str(d / "int8.tflite"), "--images", str(cells), "--out", str(tmp_path / "cli"),
                  "--method", "features", "--shift", "em"])
    assert r.exit_code == 0, r.output
    assert TFLiteClassifier(tmp_path / "cli" / "int8.tflite").ood.adapted["shift"] == "em"
    r = run(app, ["adapt", str(d / "int8.tflite"), "--images", str(cells), "--out", str(tmp_path / "c2"),
                  "--shift", "em"])
    assert r.exit_code == 2 and "--shift needs --method features" in r.output
    r = run(app, ["adapt", str(d / "int8.tflite"), "--images", str(cells), "--out", str(tmp_path / "c3"),
                  "--method", "features", "--shift", "median"])
    assert r.exit_code == 2 and "--shift 'median': valid choices are mean, em" in r.output
    r = run(app, ["adapt", str(tiny_converted / "int8.tflite"), "--images", str(cells), "--out", str(tmp_path / "c4"),
                  "--method", "features"])
    assert r.exit_code == 2 and "needs a model converted with --ood" in r.output.replace("\n", " ")
    with pytest.raises(AdaptError, match="--out .*out: not empty"):
        adapt_features(d / "int8.tflite", cells, tmp_path / "out")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(AdaptError, match="--out .*afile: is a file, not a folder"):
        adapt_features(d / "int8.tflite", cells, tmp_path / "afile")
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(cells.iterdir())[:5]:
        (few / f.name).write_bytes(f.read_bytes())
    (few / "bad.png").write_bytes(b"not a png")
    with pytest.raises(AdaptError, match=r"5 usable cell images, at least 20 needed \(1 skipped\)"):
        adapt_features(d / "int8.tflite", few, tmp_path / "o4")


def test_batch_median_limit_and_the_note_for_a_shifted_batch():
    from edge_wbc.tasks.ood import batch_median_limit

    rng = np.random.default_rng(0)
    val = {"a": rng.exponential(10.0, 400), "b": rng.exponential(20.0, 60)}
    lim, basis = batch_median_limit(val, n=20, draws=300)
    assert lim > np.median(val["b"]) and "b " in basis and "20-cell" in basis
    assert lim < 3 * np.median(val["b"])  # medians of 20 cells vary, but not by 3x
    s = OODStats(np.zeros((1, 2)), np.eye(2), 50.0, {"batch_median_limit": lim})
    assert s.batch_note(val["b"][:40], 20) is None  # cells like a training source's
    assert s.batch_note(np.full(19, 10 * lim), 20) is None  # too few cells to judge
    note = s.batch_note(np.full(25, 2 * lim), 20)
    assert note.startswith("these 25 cells look unlike the training sources") and "--method features" in note


def test_fit_quality_uses_each_source_s_train_crops_only(rng):
    from edge_wbc.data.containers import Dataset, Split
    from edge_wbc.runtime.quality import fit_limits, measures
    from edge_wbc.tasks.ood import fit_quality

    def split(n, groups):
        x = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        return Split(x, np.zeros(n, np.int64), [f"i{i}" for i in range(n)], groups)

    tr = split(12, [f"{'a' if i < 8 else 'b'}:g{i}" for i in range(12)])
    te = split(4, ["a:t"] * 4)
    te.images[:] = 0  # a test image that would move the limits if it were read
    d = fit_quality(Dataset("a,b", ("x",), {"train": tr, "val": tr, "test": te}), per_source=5)
    src = np.array([g[0] for g in tr.groups])
    rs = np.random.default_rng(0)
    keep = sorted([*rs.choice(np.flatnonzero(src == "a"), 5, replace=False), *np.flatnonzero(src == "b")])
    want = fit_limits({s: [measures(tr.images[i]) for i in keep if src[i] == s] for s in ("a", "b")}).to_dict()
    assert {k: v for k, v in d.items() if k != "fitted_on"} == pytest.approx(want)
    assert d["fitted_on"].startswith("train crops of a, b (<= 5 per source)")


def test_batch_note_names_the_model_and_says_when_an_adapted_bundle_still_looks_foreign():
    s = OODStats(np.zeros((1, 2)), np.eye(2), 50.0, {"batch_median_limit": 60.04})
    note = s.batch_note(np.full(25, 60.2), 20, "wbc_field_int8")
    assert "median OOD distance 60.2, above 60.0" in note and "edge-wbc adapt wbc_field_int8 --images" in note
    adapted = OODStats(np.zeros((1, 2)), np.eye(2), 50.0, {"batch_median_limit": 60.0}, np.zeros((2, 1)),
                       np.zeros(1), np.zeros(2), np.zeros(2), {"method": "features"})
    assert adapted.batch_note(np.full(25, 61.0), 20).startswith("these 25 cells still look unlike the training "
                                                                "sources after this bundle's adaptation")
