
import numpy as np
import pytest
from PIL import Image

from edge_wbc import preprocess as pp
from edge_wbc.errors import ImageError
from edge_wbc.spec import ModelSpec

SPEC = ModelSpec("classification", 28, 28, ("a", "b"))


def real(pbc_files):
    return pbc_files["neutrophil"][0]


def test_real_jpeg_to_spec_size(pbc_files):
    x = pp.preprocess(real(pbc_files), SPEC)
    assert x.shape == (28, 28, 3) and x.dtype == np.uint8
    # same as resizing the decoded image ourselves with bicubic
    ref = np.asarray(Image.open(real(pbc_files)).convert("RGB").resize((28, 28), Image.Resampling.BICUBIC))
    assert np.array_equal(x, ref)


def test_exif_orientation_is_applied(pbc_files, tmp_path):
    img = Image.open(real(pbc_files)).convert("RGB").crop((0, 0, 128, 64))  # 128 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif)
    out = pp.load_image(p)
    assert out.size == (64, 128)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA"])
def test_modes_become_rgb(pbc_files, tmp_path, mode):
    img = Image.open(real(pbc_files)).convert("RGB")
    if mode == "I;16":
        a = (np.asarray(img.convert("L"), np.uint16) * 257)
        conv = Image.fromarray(a)  # uint16 -> mode I;16
        p = tmp_path / "x.png"
    else:
        conv = img.convert(mode)
        p = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    conv.save(p)
    out = pp.preprocess(p, SPEC)
    assert out.shape == (28, 28, 3)
    if mode in ("L", "I;16"):
        gray = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BICUBIC))
        assert np.abs(out[..., 0].astype(int) - gray).max() <= 1


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    assert pp.load_image(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)


def test_bad_files_get_one_line_errors(pbc_files, tmp_path):
    data = real(pbc_files).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("labels, not pixels")
    cases = {"trunc.jpg": "truncated", "zero.jpg": "empty file", "text.png": "not a recognised image"}
    for name, needle in cases.items():
        with pytest.raises(ImageError) as e:
            pp.load_image(tmp_path / name)
        assert name in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ImageError, match="no such file"):
        pp.load_image(tmp_path / "missing.jpg")


def test_pixel_limit(monkeypatch, pbc_files):
    monkeypatch.setattr(pp, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match=r"128x128 = 16,384 pixels exceeds the limit of 10,000"):
        pp.load_image(real(pbc_files))


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    px = pp.load_image(tmp_path / "a.gif").getpixel((5, 5))
    assert px[0] > 200 and px[2] < 50


def test_preprocess_array_passthrough_and_resize(bloodmnist):
    x = bloodmnist.split("test").images[:4]
    assert pp.preprocess_array(x, SPEC) is x
    big = pp.preprocess_array(x, ModelSpec("classification", 64, 64, ("a", "b")))
    assert big.shape == (4, 64, 64, 3)
    with pytest.raises(ImageError, match="uint8"):
        pp.preprocess_array(x.astype(np.float32), SPEC)
