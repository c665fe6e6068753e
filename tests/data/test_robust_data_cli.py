"""Bad data and bad option values (issue 8). test_data.py already covers: the missing BloodMNIST
file naming EDGE_WBC_DATA, an npz with missing keys / wrong image shape / not a zip, an empty class
folder, a class in val/test absent from train's folders, and a directory symlink loop."""

from __future__ import annotations

import re
import shutil
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc import data as D
from edge_wbc.cli import app
from edge_wbc.errors import DataError, ImageError
from edge_wbc.spec import ModelSpec

SPEC28 = ModelSpec("classification", 28, 28, ("a", "b"))
runner = CliRunner()


def _npz(path, **override):
    arrays = {f"{s}_images": np.zeros((4, 28, 28, 3), np.uint8) for s in D.SPLITS}
    arrays |= {f"{s}_labels": np.zeros((4, 1), np.uint8) for s in D.SPLITS}
    arrays |= override
    np.savez_compressed(path, **arrays)
    return path


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"nope: no such directory"):
        D.load_folder_tree(tmp_path / "nope", SPEC28)
    with pytest.raises(
        DataError,
        match=r"unknown dataset .*nope.*: valid choices are bloodmnist, pbc128, bccd4, bccd2 or a folder path",
    ):
        D.load_dataset(str(tmp_path / "nope"), SPEC28)
    with pytest.raises(DataError, match="--data .*nope: no such directory"):
        D.data_root(tmp_path / "nope")


@pytest.mark.parametrize("override,needle", [
    ({"val_labels": np.zeros((3, 1), np.uint8)}, "val_labels has 3 rows but val_images has 4"),
    ({"test_labels": np.full((4, 1), 8, np.uint8)}, "test_labels outside 0..7"),
    ({"train_labels": np.zeros((4, 1), np.float32)}, "train_labels must be integers, got float32"),
    ({"train_images": np.zeros((4, 28, 28, 3), np.float32)}, "train_images must be uint8 (N, H, W, 3), got float32"),
])
def test_npz_wrong_values(tmp_path, override, needle):
    p = _npz(tmp_path / "b.npz", **override)
    with pytest.raises(DataError) as e:
        D.load_bloodmnist(p)
    assert needle in str(e.value) and "b.npz" in str(e.value)


def test_npz_with_a_corrupt_member(tmp_path):
    p = _npz(
        tmp_path / "b.npz",
        train_images=np.arange(4 * 28 * 28 * 3, dtype=np.uint32).astype(np.uint8).reshape(4, 28, 28, 3),
    )
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("train_images.npy")
    raw = bytearray(p.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 40
    raw[start : start + 16] = bytes(16)  # damage the compressed bytes: CRC / zlib error on read
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e:
        D.load_bloodmnist(p)
    assert "b.npz: train arrays are corrupt" in str(e.value) and "\n" not in str(e.value)


def test_official_tree_class_missing_from_train(tmp_path, small_tree):
    root = tmp_path / "t"
    for s in D.SPLITS:
        shutil.copytree(small_tree / "lymphocyte", root / s / "lymphocyte")
    (root / "train" / "monocyte").mkdir()  # present but empty in train ...
    shutil.copytree(small_tree / "monocyte", root / "test" / "monocyte")  # ... while test has it
    with pytest.raises(DataError, match=r"train/monocyte: class folder is empty"):
        D.load_folder_tree(root, SPEC28)


def test_corrupt_image_in_a_dataset_names_the_file(tmp_path, small_tree):
    for c in ("lymphocyte", "monocyte"):
        shutil.copytree(small_tree / c, tmp_path / c)
    victim = sorted((tmp_path / "monocyte").glob("*.jpg"))[3]
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(ImageError) as e:
        D.load_folder_tree(tmp_path, SPEC28)
    assert victim.name in str(e.value) and "truncated" in str(e.value)


# ---- CLI: bad option values are Typer usage errors listing the valid choices, exit 2 -----------
@pytest.mark.parametrize("args,needles", [
    (["classify", "x.jpg", "--threads", "0"], ["--threads", "greater than or equal to 1"]),
    (["bench", "--split", "holdout"], ["holdout", "train", "val", "test"]),
    (["train", "tiny", "--out", "x", "--optimizer", "rmsprop"], ["rmsprop", "adam", "adadelta", "sgd"]),
    (["train", "tiny", "--out", "x", "--class-weights", "inverse"], ["inverse", "balanced"]),
    (["train", "tiny", "--out", "x", "--epochs", "many"], ["--epochs", "valid integer"]),
    (["convert", "somewhere", "--io", "int4"], ["int4", "uint8", "int8", "float32"]),
    (["convert", "somewhere", "--calib-split", "all"], ["all", "train", "val", "test"]),
    (["convert", "somewhere", "--min-agreement", "1.5"], ["--min-agreement", "less than or equal to 1"]),
    (["bench", "--max-drop", "lots"], ["--max-drop", "valid number"]),
])
def test_bad_option_values_are_usage_errors(args, needles):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "Usage:" in r.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())  # unwrap Typer's error box
    for n in needles:
        assert n in text, (n, r.output)
