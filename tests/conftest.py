"""Shared fixtures: the real data root, a few real images, and a tiny trained model (built once)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    for cand in (os.environ.get("EDGE_WBC_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "bloodmnist" / "bloodmnist.npz").is_file():
            return Path(cand).resolve()
    return None


DATA = _data_root()
needs_data = pytest.mark.skipif(DATA is None, reason="real data not found: set EDGE_WBC_DATA (CI sets ../shared/data)")


@pytest.fixture(scope="session")
def data_root() -> Path:
    if DATA is None:
        pytest.skip("real data not found: set EDGE_WBC_DATA")
    return DATA


@pytest.fixture(scope="session")
def pbc_files(data_root) -> dict[str, list[Path]]:
    """Three real 128 px PBC test images per class."""
    root = data_root / "pbc128" / "test"
    return {d.name: sorted(d.glob("*.jpg"))[:3] for d in sorted(root.iterdir()) if d.is_dir()}


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory, data_root) -> Path:
    """A class-per-folder tree of 10 real PBC images per class (copied into tmp, never into the repo)."""
    root = tmp_path_factory.mktemp("tree")
    for d in sorted((data_root / "pbc128" / "train").iterdir()):
        (root / d.name).mkdir()
        for f in sorted(d.glob("*.jpg"))[:10]:
            shutil.copy(f, root / d.name / f.name)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, data_root) -> Path:
    """The `tiny` architecture trained briefly on 3,000 real BloodMNIST images (about 10 s)."""
    from edge_wbc.training.train import HParams, train

    out = tmp_path_factory.mktemp("tiny")
    train(HParams(model="tiny", dataset="bloodmnist", epochs=6, batch=64, limit=3000, patience=6, seed=1),
          out, data=data_root, verbose=0, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def tiny_converted(tiny_model_dir, data_root) -> Path:
    """tiny_model_dir with float32, float16 and int8 .tflite files."""
    from edge_wbc.converters import convert_model_dir

    for mode in ("float32", "float16", "int8"):
        convert_model_dir(
            tiny_model_dir, mode, data=data_root, calib=100, allow_chance=True, min_agreement=0.0, log=lambda s: None
        )
    return tiny_model_dir


@pytest.fixture(scope="session")
def bloodmnist(data_root):
    from edge_wbc.data import load_bloodmnist

    return load_bloodmnist(data_root / "bloodmnist" / "bloodmnist.npz")


def shipped_int8() -> Path:
    return REPO / "android_assets" / "bloodmnist_int8.tflite"


@pytest.fixture
def deny_listing(monkeypatch):
    """deny_listing("locked"): os.scandir of a path ending in that name raises EACCES.

    Tests run as root here, which can list any directory, so the permission error is simulated.
    """

    real = os.scandir

    def install(name: str) -> None:
        def scandir(p):
            if os.fspath(p).endswith(name):
                raise PermissionError(13, "Permission denied", os.fspath(p))
            return real(p)

        monkeypatch.setattr(os, "scandir", scandir)

    return install


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def no_warnings():
    """Any warning (NumPy's 'invalid value' / 'mean of empty slice' RuntimeWarnings) fails the test."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
