"""The embedded sample: what it holds (licenses, test splits, size), where it comes from, the data-root
fallback to it, the damaged-install errors, and `edge-wbc data sample`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.data import sample as sample_mod
from edge_wbc.data.roots import dataset_root
from edge_wbc.errors import DataError
from tests.conftest import DATA, needs_data

SAMPLES = sample_mod.SAMPLE_DIR
MANIFEST = json.loads((SAMPLES / "MANIFEST.json").read_text())
ALLOWED = {"CC BY 4.0", "MIT", "CC0 1.0"}


def test_manifest_lists_every_file_and_only_those():
    on_disk = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.is_file()} - {"MANIFEST.json", "CREDITS.md"}
    listed = {f["file"] for f in MANIFEST["files"]}
    assert on_disk == listed
    assert len(listed) == 339


def test_sample_is_small_redistributable_and_from_test_splits():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total <= 3_000_000, total
    assert {f["license"] for f in MANIFEST["files"]} == ALLOWED
    bccd_test = set((SAMPLES / "bccd" / "BCCD" / "ImageSets" / "Main" / "test.txt").read_text().split())
    for f in MANIFEST["files"]:
        assert f["source"].split("/")[0] in ("pbc128", "bloodmnist", "bccd", "smartphone_pig"), f
        assert not any(bad in f["source"].lower() for bad in ("wbc_seg", "sigtuple", "all_idb", "/train/", "/val"))
        if f["file"].startswith("bccd/BCCD/") and not f["file"].endswith(".txt"):  # test smears: in test.txt
            assert Path(f["file"]).stem in bccd_test, f
        elif f["file"].endswith((".jpg", ".xml", ".txt")):
            assert "/test/" in f["source"] or f["source"].startswith("bccd/BCCD/ImageSets/Main/test.txt"), f
    sets = MANIFEST["sets"]
    assert {k: v["n"] for k, v in sets.items()} == {"bloodmnist": 320, "pbc128": 320, "bccd_smear": 4,
                                                    "smartphone_pig": 3}
    for c in sorted((SAMPLES / "pbc128" / "test").iterdir()):
        assert len(list(c.glob("*.jpg"))) == 40, c
    credits = (SAMPLES / "CREDITS.md").read_text()
    for who in ("Acevedo", "MedMNIST", "Shenggan", "Alipo-on"):
        assert who in credits


@needs_data
def test_every_sample_file_is_the_test_split_file_it_names():
    """Byte-identical to the file under the data root (the npz: the test rows at its test_index)."""
    for f in MANIFEST["files"]:
        src = DATA / f["source"].split(" ")[0]
        if f["file"].endswith(".npz"):
            z = np.load(SAMPLES / f["file"])
            ref = np.load(src)
            idx = z["test_index"]
            assert np.array_equal(z["test_images"], ref["test_images"][idx])
            assert np.array_equal(z["test_labels"], ref["test_labels"][idx])
            assert np.bincount(z["test_labels"].ravel()).tolist() == [40] * 8
            assert len(z["train_images"]) == len(z["val_images"]) == 0
        elif f["file"].endswith("ImageSets/Main/test.txt"):
            picked = set((SAMPLES / f["file"]).read_text().split())
            assert len(picked) == 4 and picked <= set(src.read_text().split())
        else:
            assert (SAMPLES / f["file"]).read_bytes() == src.read_bytes(), f["file"]


def test_verify_passes_on_the_shipped_sample():
    m = sample_mod.verify()
    assert m["sets"]["pbc128"]["license"] == "CC BY 4.0"


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    d = tmp_path / "samples"
    shutil.copytree(SAMPLES, d)
    monkeypatch.setattr(sample_mod, "SAMPLE_DIR", d)
    return d


def test_a_changed_file_is_a_damaged_install(damaged):
    f = damaged / "pbc128" / "test" / "ig" / sorted(p.name for p in (damaged / "pbc128" / "test" / "ig").iterdir())[0]
    f.write_bytes(f.read_bytes()[:-10])
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=rf"embedded sample damaged: .*{f.name} has sha256 {digest[:12]}.*reinstall"):
        sample_mod.sample_root()


def test_a_missing_file_or_manifest_is_a_damaged_install(damaged):
    (damaged / "bloodmnist" / "bloodmnist.npz").unlink()
    with pytest.raises(DataError, match=r"bloodmnist.npz is missing; reinstall edge-wbc"):
        sample_mod.verify(damaged)
    (damaged / "MANIFEST.json").unlink()
    with pytest.raises(DataError, match=r"MANIFEST.json: the embedded sample's manifest is missing .*reinstall"):
        sample_mod.sample_info("pbc128")


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """EDGE_WBC_DATA unset and an empty user cache."""
    monkeypatch.delenv("EDGE_WBC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_root_falls_back_to_the_sample_only_without_data(no_data, monkeypatch, tmp_path):
    root, info = dataset_root("bloodmnist")
    assert root == SAMPLES and info["n"] == 320 and info["license"] == "CC BY 4.0"
    assert dataset_root("bccd4")[1] is None  # not in the sample: the cache, as before
    monkeypatch.setenv("EDGE_WBC_DATA", str(tmp_path))
    assert dataset_root("bloodmnist") == (tmp_path, None)  # asked for a root: no silent fallback


def test_data_info_lists_the_sample_last_only_without_data(no_data, monkeypatch, tmp_path):
    from edge_wbc.data import data_sources

    assert data_sources()[-1] == ("embedded sample: bloodmnist, pbc128, bccd_smear, smartphone_pig", SAMPLES)
    monkeypatch.setenv("EDGE_WBC_DATA", str(tmp_path))
    assert [k for k, _ in data_sources()] == ["EDGE_WBC_DATA", "cache"]


def test_load_dataset_reads_the_sample(no_data):
    from edge_wbc.assets import assets_dir
    from edge_wbc.data import load_dataset
    from edge_wbc.spec import ModelSpec

    spec = ModelSpec.load(assets_dir() / "pbc128_int8.json")
    ds = load_dataset("pbc128", spec)
    assert ds.sample["name"] == "pbc128" and len(ds.split("test")) == 320 and len(ds.split("train")) == 0
    assert np.bincount(ds.split("test").labels).tolist() == [40] * 8
    bm = load_dataset("bloodmnist")
    assert bm.sample["n"] == 320 and bm.split("test").images.shape == (320, 28, 28, 3)


def test_damaged_sample_stops_a_command_with_one_line(no_data, damaged, tmp_path):
    (damaged / "CREDITS.md").write_text("x")  # not listed: still fine
    next((damaged / "pbc128" / "test" / "basophil").iterdir()).unlink()
    r = CliRunner().invoke(app, ["classify", "--csv", str(tmp_path / "c.csv")])
    assert r.exit_code == 2
    assert "embedded sample damaged" in r.output and "is missing; reinstall edge-wbc" in r.output
    assert "Traceback" not in r.output


def test_data_sample_copies_it_out(tmp_path):
    r = CliRunner().invoke(app, ["data", "sample", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert "339 files" in r.output and "pbc128: 320 images" in r.output
    copied = tmp_path / "s"
    assert (copied / "CREDITS.md").is_file()
    sample_mod.verify(copied)
    r = CliRunner().invoke(app, ["data", "sample", "--out", str(copied)])
    assert r.exit_code == 2 and "exists and is not an empty directory" in r.output


def test_classify_and_segment_without_paths_use_the_sample_and_say_so(no_data, tmp_path):
    r = CliRunner().invoke(app, ["classify", "--csv", str(tmp_path / "c.csv")])
    assert r.exit_code == 0, r.output
    assert "SAMPLE DATA: classify runs on the embedded sample" in r.output and "n=320" in r.output
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert len(rows) == 321
    # the default field model knows the 5 WBC classes (200 of the 320 cells); it answers or abstains
    rows = [x.split(",") for x in rows[1:]]
    wbc = [x for x in rows if Path(x[0]).parent.name in ("basophil", "eosinophil", "lymphocyte", "monocyte",
                                                        "neutrophil")]
    answered = [x for x in wbc if x[1] != "uncertain"]
    right = sum(Path(x[0]).parent.name == x[1] for x in answered)
    assert len(wbc) == 200 and len(answered) > 100 and right / len(answered) > 0.9, (len(answered), right)
    others = [x for x in rows if x not in wbc]  # ig, erythroblast, platelet: never one of their own labels
    assert all(x[1] not in ("ig", "erythroblast", "platelet") for x in others)
    r = CliRunner().invoke(app, ["segment", "--out", str(tmp_path / "seg")])
    assert r.exit_code == 0, r.output
    assert "SAMPLE DATA: segment" in r.output and "n=8" in r.output
    assert len(list((tmp_path / "seg").glob("*.mask.png"))) == 8
