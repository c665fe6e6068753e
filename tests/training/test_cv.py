"""k-fold cross-validation of a folder tree (``edge-wbc train --folds/--fold``, ``edge-wbc cv``), on
a two-folder tree of symlinks to a few real ALL-IDB2 images (made in tmp, never in the repo)."""

import json

import numpy as np
import pytest

from edge_wbc.errors import DataError, SpecError
from edge_wbc.spec import ModelSpec


@pytest.fixture(scope="module")
def blast_tree(tmp_path_factory, data_root):
    """blast/ (ImNNN_1) and normal/ (ImNNN_0): 6 real ALL-IDB2 images each, as symlinks."""
    src = data_root / "all_idb2" / "images"
    if not src.is_dir():
        pytest.skip("ALL-IDB2 not in the data root")
    root = tmp_path_factory.mktemp("allidb2")
    for name, y in (("blast", 1), ("normal", 0)):
        (root / name).mkdir()
        for f in sorted(src.glob(f"Im*_{y}.png"))[:6]:
            (root / name / f.name).symlink_to(f.resolve())
    return root


def test_kfold_indices_are_stratified_disjoint_and_cover_everything():
    from edge_wbc.data import stratified_kfold

    y = np.array([0] * 7 + [1] * 11 + [2] * 4)
    tests = []
    for i in range(3):
        p = stratified_kfold(y, 3, i, seed=5)
        assert not set(p["val"]) & set(p["test"]) and not set(p["train"]) & set(p["val"])
        assert sorted(np.concatenate([p["train"], p["val"], p["test"]]).tolist()) == list(range(len(y)))
        counts = np.bincount(y[p["test"]], minlength=3)
        assert all(n // 3 <= c <= n // 3 + 1 for c, n in zip(counts, (7, 11, 4)))
        assert set(y[p["val"]].tolist()) == {0, 1, 2}  # every class in val
        tests.append(p["test"])
    assert sorted(np.concatenate(tests).tolist()) == list(range(len(y)))  # each index tested exactly once
    assert np.array_equal(stratified_kfold(y, 3, 1, seed=5)["val"], stratified_kfold(y, 3, 1, seed=5)["val"])
    assert not np.array_equal(stratified_kfold(y, 3, 0, seed=5)["test"], stratified_kfold(y, 3, 0, seed=6)["test"])
    with pytest.raises(DataError, match="invalid fold 3: valid choices are 0 to 2"):
        stratified_kfold(y, 3, 3)
    with pytest.raises(DataError, match=r"more than 5 images per class; class index: count \{2: 4\}"):
        stratified_kfold(y, 5, 0)


def test_folder_tree_folds_split_real_images(blast_tree):
    from edge_wbc.data import load_dataset

    spec = ModelSpec("classification", 16, 16, ("a", "b"))
    every = {str(f) for f in blast_tree.glob("*/*.png")}
    tested = []
    for i in range(2):
        ds = load_dataset(str(blast_tree), spec, seed=0, folds=2, fold=i)
        assert ds.labels == ("blast", "normal")
        tr, va, te = (set(ds.split(s).ids) for s in ("train", "val", "test"))
        assert not te & va and not te & tr and not tr & va and tr | va | te == every
        assert np.bincount(ds.split("test").labels).tolist() == [3, 3]
        assert np.bincount(ds.split("val").labels).tolist() == [1, 1]
        tested += ds.split("test").ids
    assert sorted(tested) == sorted(every)  # disjoint test folds, each image once
    default = load_dataset(str(blast_tree), spec, seed=0)  # without --folds: the 70/10/20 split, unchanged
    assert [len(default.split(s)) for s in ("train", "val", "test")] == [8, 2, 2]
    with pytest.raises(DataError, match="--folds needs a folder of <class>/ image folders, not 'bccd4'"):
        load_dataset("bccd4", spec, folds=5, fold=0)


def test_fold_options_are_checked():
    from edge_wbc.training.train import HParams

    with pytest.raises(SpecError, match="--fold 2 needs --folds"):
        HParams(model="tiny", fold=2)
    with pytest.raises(SpecError, match="invalid fold 5: valid choices are 0 to 4"):
        HParams(model="tiny", folds=5, fold=5)
    with pytest.raises(SpecError, match="--folds is for classifiers"):
        HParams(model="unet", dataset="seg", folds=5)
    assert HParams(model="tiny", folds=3).fold == 0


def test_cv_runs_every_fold_and_writes_mean_and_sd(blast_tree, tmp_path):
    from edge_wbc.training.cv import run_cv
    from edge_wbc.training.train import HParams

    hp = HParams(model="tiny", dataset=str(blast_tree), size=16, epochs=1, batch=8, seed=0)
    with pytest.raises(SpecError, match="invalid positive class 'malignant': valid choices are blast, normal"):
        run_cv(hp, tmp_path / "bad", folds=2, positive="malignant", log=lambda s: None)
    r = run_cv(hp, tmp_path / "cv", folds=2, positive="blast", log=lambda s: None)
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert saved["n"] == 12 and [f["n_test"] for f in saved["per_fold"]] == [6, 6]
    assert saved["positive"] == "blast" and saved["labels"] == ["blast", "normal"]
    for i, row in enumerate(r["per_fold"]):
        m = json.loads((tmp_path / "cv" / f"fold{i}" / "metrics.json").read_text())
        assert m["split"] == f"fold {i}/2"
        assert row["sensitivity"] == m["per_class"]["blast"]["recall"]
        assert row["specificity"] == m["per_class"]["normal"]["recall"]
        assert row["accuracy"] == m["accuracy"]
    acc = [row["accuracy"] for row in r["per_fold"]]
    assert saved["summary"]["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    assert saved["summary"]["accuracy"]["sd"] == pytest.approx(np.std(acc, ddof=1))
    md = (tmp_path / "cv" / "cv.md").read_text()
    assert "stratified 2-fold CV" in md and f"{np.mean(acc):.4f} ± {np.std(acc, ddof=1):.4f}" in md


def test_cli_fold_options_fail_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from edge_wbc.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["train", "tiny", "--dataset", str(tmp_path), "--fold", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--fold 1 needs --folds (e.g. --folds 5 --fold 1)" in r.output
    r = runner.invoke(app, ["train", "fieldnet", "--dataset", str(tmp_path), "--folds", "5", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--folds/--fold are for one folder tree" in r.output
    r = runner.invoke(app, ["cv", "tiny", "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "cross-validation needs a folder of <class>/ image folders" in r.output
