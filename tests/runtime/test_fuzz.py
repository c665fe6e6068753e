"""Fuzzing the image loader and the model loader with hypothesis (issue 8).

The only exceptions allowed out of ``edge_wbc.preprocess.preprocess`` are :class:`ImageError`, and
out of ``TFLiteClassifier(path)`` + ``predict`` only :class:`ModelError`; a crash (segfault) of this
process fails the run. Inputs: arbitrary bytes, and mutations of real image bytes (bit flips, byte
sets, 32-bit word overwrites, truncations, insertions, deletions, duplications, header splices of one
format onto another's body) and of the real shipped ``bloodmnist_int8.tflite``.

Short variants (100 examples each, derandomized) run in CI. The ``slow`` ones run at length:

    EDGE_WBC_FUZZ_REPORT=fuzz.json nice python -m pytest -m slow tests/test_fuzz.py -s

(``EDGE_WBC_FUZZ_EXAMPLES``, default 20000, sets the examples per slow test.)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from collections import Counter

import numpy as np
import pytest
from conftest import shipped_int8
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edge_wbc.errors import ImageError, ModelError
from edge_wbc.preprocess import preprocess
from edge_wbc.runtime import TFLiteClassifier
from edge_wbc.spec import ModelSpec

SPEC = ModelSpec("classification", 28, 28, ("a", "b"))
SHORT = 100
LONG = int(os.environ.get("EDGE_WBC_FUZZ_EXAMPLES", "20000"))
STATS: dict[str, Counter] = {}
COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def short(**kw):
    return settings(max_examples=SHORT, derandomize=True, **COMMON, **kw)


def long(**kw):
    return settings(max_examples=LONG, **COMMON, **kw)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    lines = [f"{name}: {sum(c.values())} inputs, " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
             for name, c in STATS.items()]
    print("\nfuzz summary\n  " + "\n  ".join(lines))
    out = os.environ.get("EDGE_WBC_FUZZ_REPORT")
    if out:
        old = json.loads(open(out).read()) if os.path.exists(out) else {}
        old.update({k: dict(v, total=sum(v.values())) for k, v in STATS.items()})
        with open(out, "w") as fh:
            json.dump(old, fh, indent=2)


# ---- seeds: real images, in every format and mode the loader takes ------------------------------
def _enc(img, fmt, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


@pytest.fixture(scope="module")
def image_seeds(pbc_files) -> list[bytes]:
    real = [fs[0].read_bytes() for fs in list(pbc_files.values())[:4]]  # real JPEGs as stored
    with Image.open(pbc_files["neutrophil"][1]) as im:
        cell = im.convert("RGB")
    small = cell.resize((48, 40))  # small seeds keep mutations dense in structure, not pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [small, small.transpose(Image.Transpose.ROTATE_90).resize((48, 40))]
    return real + [
        _enc(small, "PNG"),
        _enc(Image.fromarray(np.asarray(small.convert("L"), np.uint16) * 257), "PNG"),  # 16-bit
        _enc(small.convert("RGBA"), "PNG"),
        _enc(small.convert("P"), "PNG", transparency=0),
        _enc(frames[0], "GIF", save_all=True, append_images=frames[1:]),  # animated
        _enc(frames[0], "TIFF", save_all=True, append_images=frames[1:]),  # multi-page
        _enc(small.convert("CMYK"), "TIFF"),
        _enc(small.convert("F"), "TIFF"),
        _enc(small, "BMP"),
        _enc(small, "WEBP"),
        _enc(small, "JPEG", exif=exif, quality=80),
        _enc(small, "JPEG", progressive=True),
    ]


POS = st.floats(0, 1, allow_nan=False)
WORDS = st.sampled_from([0, 1, 0xFF, 0x7F, 0x80, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])


def ops(n_seeds: int):
    return st.lists(st.one_of(
        st.tuples(st.just("flip"), POS, st.integers(0, 7)),
        st.tuples(st.just("set"), POS, st.integers(0, 255)),
        st.tuples(st.just("head"), st.integers(0, 1023), st.integers(0, 255)),  # headers
        st.tuples(st.just("tail"), st.integers(0, 16383), st.integers(0, 255)),  # trailers; a .tflite's tables
        st.tuples(st.just("word"), POS, WORDS),
        st.tuples(st.just("truncate"), POS),
        st.tuples(st.just("insert"), POS, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("delete"), POS, st.integers(1, 256)),
        st.tuples(st.just("dup"), POS, st.integers(1, 512)),
        st.tuples(st.just("splice"), st.integers(0, n_seeds - 1), POS, POS),
    ), min_size=1, max_size=6)


def model_ops():
    """In-place edits mostly (shifting bytes breaks every flatbuffer offset, which the interpreter's
    verifier catches at once), aimed at the tables at the end of the file (tensors, quantization)."""
    tail = st.tuples(st.just("tail"), st.integers(0, 16383), st.integers(0, 255))
    tail_word = st.tuples(st.just("word"), st.floats(0.9, 1, allow_nan=False), WORDS)
    return st.lists(st.one_of(
        st.tuples(st.just("flip"), POS, st.integers(0, 7)),
        st.tuples(st.just("set"), POS, st.integers(0, 255)),
        st.tuples(st.just("word"), POS, WORDS),
        st.tuples(st.just("head"), st.integers(0, 1023), st.integers(0, 255)),
        tail, tail, tail, tail_word, tail_word,
        st.tuples(st.just("truncate"), POS),
    ), min_size=1, max_size=6)


def mutate(data: bytes, operations, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for op in operations:
        if not b:
            break
        kind = op[0]
        at = lambda f, b=b: min(int(f * len(b)), len(b) - 1)  # noqa: E731
        if kind == "flip":
            b[at(op[1])] ^= 1 << op[2]
        elif kind == "set":
            b[at(op[1])] = op[2]
        elif kind in ("head", "tail"):
            i = op[1] if kind == "head" else len(b) - 1 - op[1]
            if 0 <= i < len(b):
                b[i] = op[2]
        elif kind == "word":
            i = at(op[1]) & ~3
            b[i : i + 4] = op[2].to_bytes(4, "little")
        elif kind == "truncate":
            b = b[: at(op[1])]
        elif kind == "insert":
            i = at(op[1])
            b[i:i] = op[2]
        elif kind == "delete":
            i = at(op[1])
            del b[i : i + op[2]]
        elif kind == "dup":
            i = at(op[1])
            b[i:i] = b[i : i + op[2]]
        elif kind == "splice":  # this file's head on another file's body
            other = seeds[op[1]]
            b = b[: at(op[2]) + 1] + other[int(op[3] * len(other)) :]
    return bytes(b)


def check_image(data: bytes, path=None, name: str = "images") -> None:
    c = STATS.setdefault(name, Counter())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings leak out either (they would print on stderr)
        try:
            x = preprocess(data, SPEC)
        except ImageError as e:
            msg = str(e)
            assert msg.startswith("<bytes>: ") and "\n" not in msg, msg
            c["ImageError"] += 1
            x = None
        else:
            assert x.shape == (28, 28, 3) and x.dtype == np.uint8
            c["decoded"] += 1
        if path is not None:  # the file path gives the same outcome as the bytes
            path.write_bytes(data)
            try:
                y = preprocess(path, SPEC)
            except ImageError as e:
                assert x is None and str(path.name) in str(e) and "\n" not in str(e), str(e)
            else:
                assert x is not None and np.array_equal(x, y)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def draw_mutation(data, seeds: list[bytes]) -> bytes:
    """One seed file, mutated by a drawn list of operations."""
    i = data.draw(st.integers(0, len(seeds) - 1))
    return mutate(seeds[i], data.draw(ops(len(seeds))), seeds)


# ---- images -----------------------------------------------------------------------------------------
@short()
@given(st.binary(max_size=4096))
def test_fuzz_image_arbitrary_bytes(data):
    check_image(data, name="images: arbitrary bytes")


@short()
@given(st.data())
def test_fuzz_image_mutations(image_seeds, scratch, data):
    check_image(draw_mutation(data, image_seeds), scratch / "x.jpg", name="images: mutations of real images")


@pytest.mark.slow
@long()
@given(st.binary(max_size=65536))
def test_fuzz_image_arbitrary_bytes_long(data):
    check_image(data, name="images: arbitrary bytes (long)")


@pytest.mark.slow
@long()
@given(st.data())
def test_fuzz_image_mutations_long(image_seeds, scratch, data):
    check_image(draw_mutation(data, image_seeds), scratch / "x.jpg", name="images: mutations of real images (long)")


# ---- models -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    shutil.copy(shipped_int8().with_suffix(".json"), d / "m.json")
    shutil.copy(shipped_int8(), d / "seed.tflite")
    return d


def check_model(blob: bytes, d, name: str) -> None:
    c = STATS.setdefault(name, Counter())
    p = d / "m.tflite"
    p.write_bytes(blob)
    try:
        clf = TFLiteClassifier(p)
        probs = clf.predict(np.zeros((1, 28, 28, 3), np.uint8))
        assert probs.shape == (1, 8)
        c["loaded"] += 1
    except ModelError as e:
        msg = str(e)
        assert "m.tflite" in msg and "\n" not in msg, msg
        c["ModelError: native crash contained" if "crashed the interpreter" in msg else "ModelError"] += 1


@short()
@given(st.data())
def test_fuzz_model_mutations(model_dir, data):
    seed = (model_dir / "seed.tflite").read_bytes()
    check_model(mutate(seed, data.draw(model_ops()), [seed]), model_dir,
                "models: mutations of bloodmnist_int8.tflite")


@pytest.mark.slow
@long()
@given(st.data())
def test_fuzz_model_mutations_long(model_dir, data):
    seed = (model_dir / "seed.tflite").read_bytes()
    check_model(mutate(seed, data.draw(model_ops()), [seed]), model_dir,
                "models: mutations of bloodmnist_int8.tflite (long)")
