"""The embedded sample: a few hundred TEST-split images that ship inside the package.

``edge_wbc/samples/`` is laid out like a data root (``bloodmnist/bloodmnist.npz``, ``pbc128/test/<class>/``,
``bccd/BCCD/...``, ``smartphone_pig/test/...``), so the loaders read it as they read any root. It is
the last place data is looked for (after ``--data``, ``$EDGE_WBC_DATA`` and the fetch cache), and
``edge-wbc bench|classify|count|segment`` say loudly when they use it. Only PBC / BloodMNIST (CC BY 4.0),
BCCD (MIT) and smartphone_pig (CC0) files are in it, each listed in ``MANIFEST.json`` with its sha256;
a file that is missing or differs is a damaged install, and :func:`sample_root` says to reinstall.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cache
from pathlib import Path

from ..errors import DataError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "samples"
#: The datasets the sample holds (the manifest's "sets"), so that no file is read to know it.
SAMPLE_SETS = ("bloodmnist", "pbc128", "bccd_smear", "smartphone_pig")
REINSTALL = "reinstall edge-wbc (pip install --force-reinstall edge-wbc, or git checkout edge_wbc/samples)"


def _manifest_at(d: Path) -> dict:
    mf = d / "MANIFEST.json"
    try:
        m = json.loads(mf.read_text(encoding="utf-8"))
        m["sets"], m["files"]  # noqa: B018 - both keys must be there
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{mf}: the embedded sample's manifest is missing or unreadable ({e}); {REINSTALL}") from None
    return m


def manifest(d: Path | None = None) -> dict:
    return _manifest_at(Path(d) if d else SAMPLE_DIR)


def verify(d: Path | None = None) -> dict:
    """Check every manifest file's sha256; raise DataError naming the first bad one. Returns the manifest."""
    d = Path(d) if d else SAMPLE_DIR
    m = _manifest_at(d)
    for f in m["files"]:
        p = d / f["file"]
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            raise DataError(f"embedded sample damaged: {p} is missing; {REINSTALL}") from None
        if digest != f["sha256"]:
            raise DataError(f"embedded sample damaged: {p} has sha256 {digest[:12]}..., the manifest says "
                            f"{f['sha256'][:12]}...; {REINSTALL}")
    return m


@cache
def _verified(d: str) -> None:
    verify(Path(d))


def sample_root() -> Path:
    """The sample folder, after its sha256 check (once per process)."""
    _verified(str(SAMPLE_DIR))
    return SAMPLE_DIR


def sample_info(name: str) -> dict:
    """``{name, n, split, source, license, credit, path}`` of one set of the (verified) sample."""
    root = sample_root()
    sets = manifest(root)["sets"]
    if name not in sets:
        raise DataError(f"the embedded sample has no {name!r}: valid choices are {', '.join(sets)}")
    return {"name": name, **sets[name], "path": str(root / sets[name]["path"])}


def sample_inputs(name: str, per_class: int | None = None) -> tuple[list[Path], dict]:
    """The image files of one set (``per_class``: the first N of each class folder), and its info
    with ``n`` the number of files returned. For commands given no input paths."""
    from ..preprocess import is_image_file

    info = sample_info(name)
    root = Path(info["path"])
    if name == "pbc128":
        root = root / info["split"]
        files = [f for d in sorted(root.iterdir()) for f in sorted(d.iterdir())[:per_class] if is_image_file(f)]
    else:
        files = sorted(f for f in root.iterdir() if is_image_file(f))
    return files, {**info, "n": len(files)}


def announce(info: dict, what: str) -> str:
    """The one line every command prints when it runs on the sample."""
    return (f"SAMPLE DATA: {what} runs on the embedded sample, not a full dataset: {info['name']} "
            f"{info['split']} n={info['n']} ({info['source']}; {info['license']}). For real data pass --data or "
            "set EDGE_WBC_DATA (`edge-wbc data fetch bloodmnist` downloads the full BloodMNIST).")


def copy_sample(out: str | Path) -> tuple[Path, int]:
    """Copy the verified sample to ``out`` (created; must be empty or absent). Returns (out, files copied)."""
    src = sample_root()
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--out {out}: exists and is not an empty directory; give a new or empty one")
    m = manifest()
    try:
        for f in [*m["files"], {"file": "MANIFEST.json"}, {"file": "CREDITS.md"}]:
            dest = out / f["file"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / f["file"], dest)
    except OSError as e:
        raise DataError(f"--out {out}: cannot copy the sample ({e.strerror or e})") from None
    return out, len(m["files"])
