"""Bad and unusual image inputs (issue 8). Complements test_preprocess.py, which already covers a
truncated JPEG, a zero-byte file, text with an image extension, a missing file, the pixel limit
(monkeypatched), an animated GIF, EXIF orientation 6 and the modes L/P/RGBA/CMYK/I;16/LA."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from edge_wbc import data as D
from edge_wbc import preprocess as pp
from edge_wbc.errors import DataError, ImageError
from edge_wbc.spec import ModelSpec

SPEC = ModelSpec("classification", 28, 28, ("a", "b"))


@pytest.fixture(scope="module")
def cell(pbc_files) -> Image.Image:
    """A real 128 px PBC cell, decoded."""
    with Image.open(pbc_files["eosinophil"][0]) as im:
        return im.convert("RGB")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A valid PNG signature + IHDR declaring w x h, with one row of data: a tiny decompression bomb."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * 64)))
        + chunk(b"IEND", b"")
    )


def assert_one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


# ---- truncated / corrupt files of every format ------------------------------------------------
@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("GIF", "gif"), ("TIFF", "tif"), ("BMP", "bmp"), ("WEBP", "webp")])
def test_truncated_files_of_each_format(cell, tmp_path, fmt, ext):
    data = encode(cell, fmt)
    for frac in (0.3, 0.6, 0.9):
        p = tmp_path / f"cut {int(frac * 100)}.{ext}"  # a space in the name, too
        p.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(ImageError) as e:
            pp.preprocess(p, SPEC)
        assert_one_line_error(e, p.name)
        assert "truncated" in str(e.value) or "cannot decode" in str(e.value) or "not a recognised" in str(e.value)


def test_png_with_corrupt_compressed_data(cell, tmp_path):
    data = bytearray(encode(cell, "PNG"))
    i = data.index(b"IDAT") + 4
    data[i + 40 : i + 200] = bytes(range(160))  # garbage inside the zlib stream
    (tmp_path / "z.png").write_bytes(bytes(data))
    with pytest.raises(ImageError) as e:
        pp.load_image(tmp_path / "z.png")
    assert_one_line_error(e, "z.png", "cannot decode image")


def test_format_allow_list(cell, tmp_path):
    """Formats Pillow knows but the project does not take (ICO, PPM, ...) are refused by content."""
    (tmp_path / "icon.png").write_bytes(encode(cell.resize((32, 32)), "ICO"))
    (tmp_path / "netpbm.jpg").write_bytes(encode(cell, "PPM"))
    for name in ("icon.png", "netpbm.jpg"):
        with pytest.raises(ImageError) as e:
            pp.load_image(tmp_path / name)
        assert_one_line_error(e, name, "not a recognised image file", "JPEG")
    # a PNG named .jpg is fine: the content decides
    (tmp_path / "png_named.jpg").write_bytes(encode(cell, "PNG"))
    assert pp.load_image(tmp_path / "png_named.jpg").size == (128, 128)


def test_directory_fifo_and_broken_symlink(tmp_path):
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageError, match="is a directory"):
        pp.load_image(tmp_path / "dir.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(ImageError) as e:
        pp.load_image(tmp_path / "gone.jpg")
    assert_one_line_error(e, "gone.jpg", "broken symbolic link")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jpg")
        with pytest.raises(ImageError, match="pipe.jpg: not a regular file"):
            pp.load_image(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match=r"<bytes>: empty"):
        pp.load_image(b"")


# ---- sizes ------------------------------------------------------------------------------------
def test_tiny_1x1_image(tmp_path):
    Image.new("RGB", (1, 1), (200, 30, 90)).save(tmp_path / "dot.png")
    x = pp.preprocess(tmp_path / "dot.png", SPEC)
    assert x.shape == (28, 28, 3) and (x == np.array([200, 30, 90], np.uint8)).all()
    x = pp.preprocess(tmp_path / "dot.png", SPEC.replace(crop="center_square"))
    assert x.shape == (28, 28, 3)


def test_zero_sized_pil_image():
    with pytest.raises(ImageError, match="<image>"):
        pp.preprocess(Image.new("RGB", (0, 5)), SPEC)


@pytest.mark.parametrize("w,h,needle", [
    (9000, 9000, "9000x9000 = 81,000,000 pixels exceeds the limit of 64,000,000"),  # our limit, below Pillow's
    (20000, 20000, "refused as a decompression bomb"),  # above Pillow's own hard limit (2 x 89.5 MP)
])
def test_decompression_bomb_refused_before_decoding(tmp_path, w, h, needle):
    p = tmp_path / "bomb.png"
    p.write_bytes(png_header_only(w, h))
    assert p.stat().st_size < 1000
    t = time.perf_counter()
    with pytest.raises(ImageError) as e:
        pp.load_image(p)
    assert time.perf_counter() - t < 2.0  # refused from the header, nothing was decoded
    assert_one_line_error(e, "bomb.png", needle)
    assert pp.MAX_PIXELS == 64_000_000


# ---- pixel modes ------------------------------------------------------------------------------
def _gray(cell):
    return np.asarray(cell.convert("L").resize((28, 28), Image.Resampling.BICUBIC)).astype(int)


def test_16bit_big_endian_and_png16(cell, tmp_path):
    g16 = np.asarray(cell.convert("L"), np.uint16) * 257
    be = Image.frombytes("I;16B", cell.size, g16.astype(">u2").tobytes())
    be.save(tmp_path / "be.tif")
    assert Image.open(tmp_path / "be.tif").mode == "I;16B"
    Image.fromarray(g16).save(tmp_path / "g16.png")  # 16-bit grayscale PNG
    for name in ("be.tif", "g16.png"):
        out = pp.preprocess(tmp_path / name, SPEC)
        assert np.abs(out[..., 0].astype(int) - _gray(cell)).max() <= 1


def test_float_and_int32_images_by_value_range(cell, tmp_path):
    g = np.asarray(cell.convert("L"), np.float32)
    (Image.fromarray(g / 255.0, "F")).save(tmp_path / "unit.tif")  # 0..1 floats
    (Image.fromarray(g, "F")).save(tmp_path / "f255.tif")  # 0..255 floats
    (Image.fromarray(g.astype(np.int32) * 257, "I")).save(tmp_path / "i16.tif")  # 16-bit range in mode I
    for name in ("unit.tif", "f255.tif", "i16.tif"):
        out = pp.preprocess(tmp_path / name, SPEC)
        assert np.abs(out[..., 0].astype(int) - _gray(cell)).max() <= 1, name
    bad = g / 255.0
    bad[:10] = np.nan
    bad[10:20] = np.inf
    bad[20:30] = -5
    Image.fromarray(bad.astype(np.float32), "F").save(tmp_path / "nan.tif")
    with np.errstate(all="raise"):  # no "invalid value in cast" warnings either
        out = pp.preprocess(tmp_path / "nan.tif", SPEC)
    assert out.shape == (28, 28, 3)


@pytest.mark.parametrize("mode", ["1", "LAB", "HSV", "YCbCr", "La", "RGBa", "PA", "RGBX", "I", "F", "I;16B"])
def test_every_pil_mode_gives_rgb(cell, mode):
    if mode in ("La", "RGBa", "PA"):
        img = cell.convert("RGBA").convert("LA" if mode == "La" else "RGBA")
        img = img.convert(mode)
    elif mode == "I;16B":
        img = Image.frombytes(mode, cell.size, (np.asarray(cell.convert("L"), np.uint16) * 257).astype(">u2").tobytes())
    else:
        img = cell.convert(mode)
    assert img.mode == mode
    out = pp.preprocess(img, SPEC)
    assert out.shape == (28, 28, 3) and out.dtype == np.uint8
    if mode in ("HSV", "YCbCr", "RGBX", "RGBa"):  # lossless or near-lossless round trips to RGB
        ref = np.asarray(cell.resize((28, 28), Image.Resampling.BICUBIC)).astype(int)
        assert np.abs(out.astype(int) - ref).mean() < 3


def test_palette_with_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0] * 256)
    img.info["transparency"] = 0
    img.save(tmp_path / "t.png", transparency=0)
    assert pp.load_image(tmp_path / "t.png").getpixel((3, 3)) == (255, 255, 255)


# ---- frames ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,ext", [("TIFF", "tif"), ("WEBP", "webp"), ("PNG", "png")])
def test_multi_frame_files_use_the_first_frame(tmp_path, fmt, ext):
    frames = [Image.new("RGB", (20, 20), c) for c in ((250, 10, 10), (10, 10, 250), (10, 250, 10))]
    p = tmp_path / f"multi.{ext}"
    kw = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(p, fmt, save_all=True, append_images=frames[1:], **kw)
    with Image.open(p) as im:
        assert getattr(im, "n_frames", 1) == 3  # really multi-frame (multi-page TIFF, animated WebP/APNG)
    r, g, b = pp.load_image(p).getpixel((5, 5))
    assert r > 200 and g < 50 and b < 50


# ---- EXIF ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(cell, tmp_path, orientation):
    img = cell.crop((0, 0, 128, 64))
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    img.save(p, exif=exif)
    ref = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    got = pp.load_image(p)
    assert got.size == ref.size and np.array_equal(np.asarray(got), np.asarray(ref))


def test_corrupt_exif_that_breaks_pillows_exif_transpose(cell, tmp_path):
    """Pillow's exif_transpose re-serializes EXIF and raises struct.error on this block (a Make tag
    whose id was corrupted into a SHORT tag); the orientation tag itself is fine and is applied."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Cam"
    raw = exif.tobytes()
    corrupt = raw.replace(b"\x01\x0f\x00\x02", b"\x01\x4c\x00\x02")
    assert corrupt != raw
    p = tmp_path / "exif.jpg"
    cell.crop((0, 0, 128, 64)).save(p, exif=corrupt)
    with pytest.raises(struct.error):
        ImageOps.exif_transpose(Image.open(p))
    assert pp.load_image(p).size == (64, 128)  # rotated, no exception


def test_unreadable_exif_is_an_image_error(cell, tmp_path, monkeypatch):
    p = tmp_path / "x.jpg"
    cell.save(p)

    def boom(self):
        raise SyntaxError("not a TIFF IFD")

    monkeypatch.setattr(Image.Image, "getexif", boom)
    with pytest.raises(ImageError) as e:
        pp.load_image(p)
    assert_one_line_error(e, "x.jpg", "corrupt EXIF metadata (not a TIFF IFD)")


# ---- failures that happen late ------------------------------------------------------------------
def test_lazy_pil_image_that_fails_on_load(cell):
    data = encode(cell, "PNG")
    img = Image.open(io.BytesIO(data[: len(data) // 2]))  # the header is fine: open() succeeds
    with pytest.raises(ImageError) as e:
        pp.preprocess(img, SPEC)
    assert_one_line_error(e, "<image>")


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("decoder state"), IndexError("tile"), AttributeError("x")])
def test_any_decoder_exception_becomes_image_error(cell, tmp_path, monkeypatch, exc):
    p = tmp_path / "ok.png"
    cell.save(p)

    def load(self):
        raise exc

    from PIL import ImageFile

    monkeypatch.setattr(Image.Image, "load", load)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(ImageError) as e:
        pp.load_image(p)
    assert_one_line_error(e, "ok.png")
    if isinstance(exc, MemoryError):
        assert "too large to decode in memory" in str(e.value)


def test_resize_memory_error_is_an_image_error(cell, tmp_path, monkeypatch):
    p = tmp_path / "ok.png"
    cell.save(p)

    def resize(*a, **k):
        raise MemoryError

    monkeypatch.setattr(Image.Image, "resize", resize)
    with pytest.raises(ImageError, match="ok.png: image too large to decode in memory"):
        pp.preprocess(p, SPEC)


# ---- file names ---------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="non-UTF-8 file names are a POSIX thing")
def test_non_utf8_and_space_file_names(cell, tmp_path):
    d = os.fsencode(tmp_path)
    good = os.path.join(d, b"caf\xe9 cell.jpg")  # Latin-1 byte, not valid UTF-8
    bad = os.path.join(d, b"\xff\xfe broken.jpg")
    cell.save(os.fsdecode(good), "JPEG")
    with open(bad, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0 not really")
    assert pp.preprocess(os.fsdecode(good), SPEC).shape == (28, 28, 3)
    with pytest.raises(ImageError) as e:
        pp.load_image(os.fsdecode(bad))
    msg = str(e.value)
    msg.encode("utf-8")  # printable and encodable: no lone surrogates
    assert "\\xff\\xfe broken.jpg" in msg
    found = [pp.display_name(p) for p in D.iter_image_files(tmp_path)]
    assert any(n.endswith("caf\\xe9 cell.jpg") for n in found) and len(found) == 2


# ---- directory walks ------------------------------------------------------------------------------
def test_walk_reports_broken_and_looping_links_and_skips_dir_loops(cell, tmp_path):
    (tmp_path / "a").mkdir()
    cell.save(tmp_path / "a" / "real.jpg")
    (tmp_path / "a" / "up").symlink_to(tmp_path)  # directory loop: walked once
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a")  # and another
    (tmp_path / "a" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "a" / "x.jpg").symlink_to(tmp_path / "a" / "y.jpg")  # a symlink chain that loops
    (tmp_path / "a" / "y.jpg").symlink_to(tmp_path / "a" / "x.jpg")
    (tmp_path / "a" / "notes.txt").write_text("skipped: not an image extension")
    (tmp_path / "a" / "._real.jpg").write_bytes(b"macOS resource fork: hidden, skipped")
    files = sorted(p.name for p in D.iter_image_files(tmp_path))
    assert files == ["dangling.jpg", "real.jpg", "x.jpg", "y.jpg"]
    errors = {}
    for p in D.iter_image_files(tmp_path):
        try:
            pp.load_image(p)
        except ImageError as e:
            errors[p.name] = str(e)
    assert set(errors) == {"dangling.jpg", "x.jpg", "y.jpg"}
    assert all("broken symbolic link" in m for m in errors.values())


def test_unlistable_directory_is_reported_not_skipped(cell, tmp_path, deny_listing):
    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    cell.save(tmp_path / "ok" / "a.jpg")
    deny_listing("locked")
    with pytest.raises(DataError, match=r"locked: cannot list directory \(Permission denied\)"):
        list(D.iter_image_files(tmp_path))
    seen = []
    files = list(D.iter_inputs([tmp_path], onerror=lambda d, e: seen.append((d.name, e.strerror))))
    assert [f.name for f in files] == ["a.jpg"] and seen == [("locked", "Permission denied")]


def test_unreadable_file_is_an_image_error(cell, tmp_path, monkeypatch):
    p = tmp_path / "secret.jpg"
    cell.save(p)

    def deny(*a, **k):  # root reads anything; simulate EACCES
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(pp, "open", deny, raising=False)
    with pytest.raises(ImageError) as e:
        pp.load_image(p)
    assert_one_line_error(e, "secret.jpg: cannot read file (Permission denied)")
