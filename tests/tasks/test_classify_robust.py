"""`edge-wbc classify` over bad input (issue 8): it goes on past bad files, reports each one, never
shows a traceback, streams its input, and writes -o atomically even when killed by a signal."""

from __future__ import annotations

import csv
import io
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import shipped_int8
from PIL import Image

from edge_wbc import data as D

N_GOOD, N_BAD = 50, 200


def _enc(img: Image.Image, fmt: str) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt)
    return b.getvalue()


def _png_bomb(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 193)) + chunk(b"IEND", b""))


def make_bad_files(dest: Path, sources: list[Path], n: int = N_BAD, seed: int = 0) -> list[str]:
    """n malformed files made from real images (truncations, corruptions, header splices, bombs,
    disguised formats, broken links) plus non-image junk. Returns the names as classify shows them."""
    rng = random.Random(seed)
    kinds = (
        ["jpg_cut"] * 50
        + ["png_cut"] * 20
        + ["other_cut"] * 20
        + ["soi"] * 15
        + ["idat"] * 15
        + ["zero"] * 10
        + ["text"] * 15
        + ["random"] * 20
        + ["splice"] * 14
        + ["bomb"] * 5
        + ["disguised"] * 6
        + ["link"] * 4
        + ["loop"] * 6
    )
    assert len(kinds) == n
    exts = {}
    paths = []
    for i, kind in enumerate(kinds):
        ext = {"png_cut": ".png", "idat": ".png", "bomb": ".png"}.get(kind, ".jpg")
        if kind == "other_cut":
            exts[i] = rng.choice([("GIF", ".gif"), ("TIFF", ".tif"), ("BMP", ".bmp"), ("WEBP", ".webp")])
            ext = exts[i][1]
        elif kind in ("text", "random"):
            ext = rng.choice([".jpg", ".png", ".tif", ".gif", ".bmp", ".webp"])
        raw = b"\xe9\xff" if i % 10 == 7 else b""  # some names that are not UTF-8
        paths.append(os.path.join(os.fsencode(dest), f"bad {i:03d} ".encode() + raw + f"{kind}{ext}".encode()))
    loops = [i for i, k in enumerate(kinds) if k == "loop"]
    for i, kind in enumerate(kinds):
        src = sources[i % len(sources)]
        data = src.read_bytes()
        img = Image.open(src).convert("RGB")
        out = None
        if kind == "jpg_cut":
            out = data[: int(len(data) * rng.uniform(0.05, 0.9))]
        elif kind == "png_cut":
            p = _enc(img, "PNG")
            out = p[: int(len(p) * rng.uniform(0.1, 0.9))]
        elif kind == "other_cut":
            q = _enc(img, exts[i][0])
            out = q[: int(len(q) * rng.uniform(0.1, 0.9))]
        elif kind == "soi":  # the JPEG start-of-image marker destroyed
            out = bytes([0, rng.randrange(256), 0x00, 0x10]) + data[4:]
        elif kind == "idat":  # garbage inside a PNG's compressed pixel data
            b = bytearray(_enc(img, "PNG"))
            j = b.index(b"IDAT") + 4 + rng.randrange(10, 100)
            b[j : j + 64] = rng.randbytes(64)
            out = bytes(b)
        elif kind == "zero":
            out = b""
        elif kind == "text":
            out = rng.choice(
                [
                    b"<html><body>404 Not Found</body></html>",
                    b'{"labels": ["a", "b"]}',
                    b"basophil\neosinophil\n",
                    "\u00b5-scope notes, not pixels".encode(),
                ]
            )
        elif kind == "random":
            out = rng.randbytes(rng.randint(1, 5000))
        elif kind == "splice":  # one format's header on another format's body
            p = _enc(img, "PNG")
            out = data[: data.index(b"\xff\xda")] + p[8:] if i % 2 else p[:33] + data[2:]
        elif kind == "bomb":
            out = _png_bomb(9000 + i, 9000)
        elif kind == "disguised":  # formats Pillow reads but the project refuses
            out = _enc(img.resize((32, 32)), "ICO") if i % 2 else _enc(img, "PPM")
        if kind == "link":
            os.symlink(os.path.join(os.fsencode(dest), b"nowhere.jpg"), paths[i])
        elif kind == "loop":  # pairs of links that point at each other
            j = loops.index(i)
            os.symlink(paths[i + 1] if j % 2 == 0 else paths[i - 1], paths[i])
        else:
            with open(paths[i], "wb") as fh:
                fh.write(out)
    return [p.decode("utf-8", "backslashreplace") for p in paths]


@pytest.fixture(scope="module")
def good_sources(data_root) -> list[Path]:
    root = data_root / "pbc128" / "test"
    per_class = [sorted(d.glob("*.jpg"))[:7] for d in sorted(root.iterdir()) if d.is_dir()]
    return [f for group in zip(*per_class) for f in group][:N_GOOD]  # interleaved classes


def _classify(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edge_wbc", "classify", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def _rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:  # strict UTF-8: the CSV must be valid
        return {os.path.basename(r["file"]): r for r in csv.DictReader(fh)}


def test_mixed_folder_200_bad_50_good(tmp_path, good_sources, data_root):
    t0 = time.monotonic()
    mixed, alone = tmp_path / "mixed", tmp_path / "alone"
    mixed.mkdir()
    alone.mkdir()
    for i, f in enumerate(good_sources):
        name = f"good {i:02d} {f.name}"  # spaces in names
        shutil.copy(f, mixed / name)
        shutil.copy(f, alone / name)
    bad = make_bad_files(mixed, good_sources)
    assert len(bad) == N_BAD and len(set(bad)) == N_BAD

    r = _classify(mixed, "--csv", tmp_path / "mixed.csv")
    ref = _classify(alone, "--csv", tmp_path / "alone.csv")
    assert ref.returncode == 0, ref.stderr
    assert r.returncode == 1, r.stderr[-3000:]
    for out in (r.stdout, r.stderr):
        assert "Traceback" not in out and "Fatal Python error" not in out and "Warning" not in out

    rows, good_rows = _rows(tmp_path / "mixed.csv"), _rows(tmp_path / "alone.csv")
    assert len(rows) == N_GOOD + N_BAD and len(good_rows) == N_GOOD
    labels = [c for c in next(iter(rows.values())) if c not in ("file", "prediction", "confidence", "flag", "error")]
    assert len(labels) == 5  # the default field model's five WBC classes
    for name, g in good_rows.items():  # every good file: same prediction and probabilities as alone
        m = rows[name]
        assert m["error"] == "" and m["prediction"] == g["prediction"] and m["prediction"] in (*labels, "uncertain")
        assert [m[c] for c in labels] == [g[c] for c in labels]
    for full in bad:  # every bad file: in the CSV with its reason, and in the list on stderr
        base = os.path.basename(full)
        row = rows[base]
        assert row["prediction"] == "" and row["confidence"] == "", row
        assert base in row["error"] and ": " in row["error"] and "\n" not in row["error"], row
        assert row["error"] in r.stderr
    assert f"{N_BAD} file(s) could not be classified" in r.stderr
    reasons = " ".join(row["error"] for row in rows.values())
    for needle in (
        "truncated",
        "not a recognised image file",
        "empty file (0 bytes)",
        "exceeds the limit of 64,000,000",
        "broken symbolic link",
        "cannot decode image",
    ):
        assert needle in reasons, needle
    assert time.monotonic() - t0 < 60  # about 5 s here; generous for loaded CI machines

    r = _classify(mixed, "--csv", tmp_path / "skip.csv", "--skip-bad")
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_classify_streams_its_input(tmp_path, good_sources, monkeypatch):
    """Paths are produced and classified one at a time: nothing collects the whole input first."""
    from edge_wbc.runtime import TFLiteClassifier, iter_predictions

    clf = TFLiteClassifier(shipped_int8())
    endless = itertools.cycle(good_sources)  # an input with no end can only work if it is streamed
    first = list(itertools.islice(iter_predictions(clf, endless), 5))
    assert len(first) == 5 and all(err is None for _, _, err in first)
    scanned = []
    real = os.scandir

    def counting(p):
        scanned.append(os.fspath(p))
        return real(p)

    monkeypatch.setattr(os, "scandir", counting)
    root = good_sources[0].parents[2]  # pbc128: 3 splits x 8 classes, 17k files
    first = next(D.iter_inputs([root]))
    assert first.suffix == ".jpg" and len(scanned) <= 3  # root, its first split, its first class


def _wait_for_partial_tmp(d: Path, proc, timeout=120.0) -> int:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        assert proc.poll() is None, "classify ended before it could be interrupted"
        for f in d.iterdir():
            if f.name.endswith(".tmp"):
                try:
                    size = f.stat().st_size
                except FileNotFoundError:
                    continue
                if size > 0:  # rows are being streamed into the temp file
                    return size
        time.sleep(0.01)
    raise AssertionError("no partial temp file appeared")


@pytest.mark.parametrize(
    "sig,code,message", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")]
)
def test_signal_mid_run_keeps_the_old_csv(tmp_path, data_root, sig, code, message):
    out = tmp_path / "out.csv"
    old = b"file,prediction\nold.jpg,basophil\n"
    out.write_bytes(old)
    big = data_root / "pbc128"  # 17,075 JPEGs: many seconds of work
    proc = subprocess.Popen([sys.executable, "-m", "edge_wbc", "classify", str(big), "--csv", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    try:
        partial = _wait_for_partial_tmp(tmp_path, proc)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert partial > 0
    assert proc.returncode == code, stderr
    assert out.read_bytes() == old  # byte-identical: not truncated, not half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temp file left behind
    assert message in stderr and "Traceback" not in stderr


def test_successful_run_replaces_the_csv(tmp_path, good_sources):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    r = _classify(*good_sources[:3], "--csv", out)
    assert r.returncode == 0, r.stderr
    assert len(_rows(out)) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_unwritable_output_is_a_clear_error(tmp_path, good_sources):
    (tmp_path / "file").write_text("x")
    r = _classify(good_sources[0], "--csv", tmp_path / "file" / "out.csv")  # parent is a file
    assert r.returncode == 2 and "file is a file, not a directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_rss_stays_flat_over_10k_images(data_root):
    """benchmarks/classify_rss.py at full size: RSS growth after warm-up <= 10 %."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("classify_rss", REPO / "benchmarks" / "classify_rss.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--n", "10000", "--data", str(data_root)])
    assert res["images"] == 10_000
    assert res["growth_peak_pct"] <= 10.0 and res["growth_end_pct"] <= 10.0, res


def test_unlistable_directory_is_a_bad_entry(tmp_path, good_sources, deny_listing):
    from typer.testing import CliRunner

    from edge_wbc.cli import app

    (tmp_path / "in" / "locked").mkdir(parents=True)
    shutil.copy(good_sources[0], tmp_path / "in" / "a.jpg")
    deny_listing("locked")
    r = CliRunner().invoke(app, ["classify", str(tmp_path / "in"), "--csv", str(tmp_path / "o.csv")])
    assert r.exit_code == 1 and "locked: cannot list directory (Permission denied)" in r.output
    rows = _rows(tmp_path / "o.csv")
    assert rows["a.jpg"]["prediction"] and "cannot list directory" in rows["locked"]["error"]
