import shutil

import numpy as np
import pytest

from edge_wbc import data as D
from edge_wbc.errors import DataError
from edge_wbc.spec import ModelSpec

SPEC28 = ModelSpec("classification", 28, 28, ("a", "b"))


def test_bloodmnist_official_split(bloodmnist):
    assert bloodmnist.labels == D.BLOODMNIST_LABELS
    assert {s: len(sp) for s, sp in bloodmnist.splits.items()} == {"train": 11959, "val": 1712, "test": 3421}
    te = bloodmnist.split("test")
    assert te.images.shape == (3421, 28, 28, 3) and te.images.dtype == np.uint8
    assert set(np.unique(te.labels)) == set(range(8))
    assert te.ids[5] == "test[5]"


def test_data_root_order(monkeypatch, tmp_path, data_root):
    monkeypatch.setenv(D.ENV_VAR, str(data_root))
    assert D.data_root(tmp_path) == tmp_path  # --data wins
    assert D.data_root() == data_root  # then the env var
    monkeypatch.delenv(D.ENV_VAR)
    assert D.data_root() == D.cache_dir()  # then the cache
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(DataError, match="EDGE_WBC_DATA=.*no such directory"):
        D.data_root()


def test_missing_bloodmnist_names_env_var(tmp_path):
    with pytest.raises(DataError, match="EDGE_WBC_DATA"):
        D.load_dataset("bloodmnist", data=tmp_path)


def test_npz_wrong_keys_and_shapes(tmp_path):
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 28, 28, 3), np.uint8))
    with pytest.raises(DataError, match=r"lacks keys \['train_labels'"):
        D.load_bloodmnist(tmp_path / "bad.npz")
    arrays = {
        f"{s}_{k}": (np.zeros((2, 28, 28), np.uint8) if k == "images" else np.zeros((2, 1)))
        for s in D.SPLITS
        for k in ("images", "labels")
    }
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(DataError, match=r"train_images must be uint8 \(N, H, W, 3\)"):
        D.load_bloodmnist(tmp_path / "shape.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        D.load_bloodmnist(tmp_path / "junk.npz")


def test_single_tree_split_is_stratified_and_deterministic(small_tree):
    a = D.load_folder_tree(small_tree, SPEC28, seed=3)
    b = D.load_folder_tree(small_tree, SPEC28, seed=3)
    assert a.labels == tuple(sorted(d.name for d in small_tree.iterdir()))
    for s in D.SPLITS:
        assert a.split(s).ids == b.split(s).ids
        # every class in every split (10 per class -> 7/1/2)
        assert np.bincount(a.split(s).labels, minlength=8).min() >= 1
    all_ids = sum((a.split(s).ids for s in D.SPLITS), [])
    assert len(all_ids) == len(set(all_ids)) == 80
    c = D.load_folder_tree(small_tree, SPEC28, seed=4)
    assert c.split("test").ids != a.split("test").ids


def test_official_tree_and_class_checks(tmp_path, small_tree):
    root = tmp_path / "t"
    for s, classes in {
        "train": ["lymphocyte", "monocyte"],
        "val": ["lymphocyte", "monocyte"],
        "test": ["lymphocyte", "monocyte"],
    }.items():
        for c in classes:
            shutil.copytree(small_tree / c, root / s / c)
    ds = D.load_folder_tree(root, SPEC28)
    assert ds.labels == ("lymphocyte", "monocyte") and len(ds.split("test")) == 20
    shutil.copytree(small_tree / "platelet", root / "test" / "platelet")
    with pytest.raises(DataError, match=r"class folders \['platelet'\] are not in train"):
        D.load_folder_tree(root, SPEC28)


def test_empty_class_folder(tmp_path, small_tree):
    shutil.copytree(small_tree / "monocyte", tmp_path / "monocyte")
    (tmp_path / "basophil").mkdir()
    with pytest.raises(DataError, match="basophil: class folder is empty"):
        D.load_folder_tree(tmp_path, SPEC28)


def test_bccd_split_by_smear(data_root):
    spec = ModelSpec("classification", 32, 32, ("a", "b"))
    ds = D.load_dataset("bccd4", spec, data=data_root)
    assert ds.labels == ("eosinophil", "lymphocyte", "monocyte", "neutrophil")
    groups = {s: set(sp.groups) for s, sp in ds.splits.items()}
    assert (
        not groups["train"] & groups["val"]
        and not groups["train"] & groups["test"]
        and not groups["val"] & groups["test"]
    )
    test_smears = set((data_root / "bccd/BCCD/ImageSets/Main/test.txt").read_text().split())
    assert groups["test"] <= test_smears
    assert sum(len(sp) for sp in ds.splits.values()) == 351 - 3  # basophils dropped
    two = D.load_dataset("bccd2", spec, data=data_root)
    assert two.labels == ("mononuclear", "polynuclear")


def test_fetch_offline_message(tmp_path):
    with pytest.raises(DataError) as e:
        D.fetch("bloodmnist", tmp_path, url="http://127.0.0.1:9/bloodmnist.npz", timeout=2)
    assert "EDGE_WBC_DATA" in str(e.value) and "cannot download bloodmnist" in str(e.value)
    assert not any(tmp_path.rglob("*.npz"))
    with pytest.raises(DataError, match="valid choices are bloodmnist"):
        D.fetch("imagenet", tmp_path)


def test_fetch_md5_check(tmp_path, data_root):
    # a local file:// URL stands in for the mirror: the md5 of the real file passes, a corrupt copy fails
    good = data_root / "bloodmnist" / "bloodmnist.npz"
    got = D.fetch("bloodmnist", tmp_path / "ok", url=good.resolve().as_uri())
    assert D.md5sum(got) == D.CATALOG["bloodmnist"].md5
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(DataError, match="md5"):
        D.fetch("bloodmnist", tmp_path / "bad", url=bad.as_uri())
    assert not (tmp_path / "bad" / "bloodmnist" / "bloodmnist.npz").exists()


def test_symlink_loop_is_skipped(tmp_path, small_tree):
    shutil.copytree(small_tree / "monocyte", tmp_path / "a")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    files = list(D.iter_image_files(tmp_path))
    assert len(files) == 10
