"""The red-cell scale estimator, the scale step of count / segment, and their bad-input behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.tasks import scale as S

runner = CliRunner()


def disc_field(d: float, w: int = 640, h: int = 480, n: int = 60, seed: int = 0) -> Image.Image:
    """Pink discs of diameter ``d`` px (pale centre) on a light background, not overlapping."""
    rng = np.random.default_rng(seed)
    a = np.full((h, w, 3), (225, 222, 215), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    centres: list[tuple[float, float]] = []
    for _ in range(n * 40):
        if len(centres) == n:
            break
        cx, cy = rng.uniform(d, w - d), rng.uniform(d, h - d)
        if all((cx - x) ** 2 + (cy - y) ** 2 > (1.15 * d) ** 2 for x, y in centres):
            centres.append((cx, cy))
            r2 = (xx - cx) ** 2 + (yy - cy) ** 2
            a[r2 <= (d / 2) ** 2] = (200, 140, 150)
            a[r2 <= (d / 6) ** 2] = (215, 180, 185)  # pale centre, still darker than the background
    return Image.fromarray(a)


def test_disc_diameter_and_rescale_equivariance():
    base = S.estimate_scale(disc_field(40))
    assert base.ok and base.rbc_px == pytest.approx(40 / S.ROUND_FRAC, rel=0.08)
    assert base.um_per_px == pytest.approx(S.RBC_UM / base.rbc_px)
    assert 0.5 < base.confidence <= 1.0 and base.red_cells > 30
    img = disc_field(40)
    for f in (0.4, 2.5):
        e = S.estimate_scale(img.resize((round(640 * f), round(480 * f)), Image.Resampling.BICUBIC))
        assert e.ok and e.um_per_px * f / base.um_per_px == pytest.approx(1.0, abs=0.1), f


def test_bccd_smear_scale_is_near_its_red_cell_boxes(data_root):
    # BloodImage_00001: VOC red-cell boxes 96 px (7.5 / 96 = 0.078 um/px)
    e = S.estimate_scale(Image.open(data_root / "bccd/BCCD/JPEGImages/BloodImage_00001.jpg").convert("RGB"))
    assert e.ok and 0.7 * 96 < e.rbc_px < 1.4 * 96


@pytest.mark.parametrize("bad", [0, -1, 0.01, 5.5, float("nan")])
def test_um_per_px_out_of_range_is_one_clear_error(bad):
    with pytest.raises(S.ScaleError, match=rf"--um-per-px {bad}: must be a number from 0.02 to 5 µm per pixel"):
        S.check_um_per_px(bad)
    assert S.check_um_per_px(0.3) == 0.3


def test_field_scale_flags_and_sources(data_root):
    blank = S.field_scale(Image.new("RGB", (640, 480), (230, 225, 220)), 0.07)
    assert blank.source == "fallback" and blank.um_per_px == 0.07 and "no_red_cells" in blank.flags and blank.unusable
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert "no_red_cells" in S.field_scale(Image.fromarray(noise), 0.07).flags  # no cell-sized structure
    cell = S.field_scale(Image.open(data_root / "wbc_seg/dataset1/001.bmp").convert("RGB"), 0.1)
    assert cell.flags == ["single_cell"] and cell.source == "fallback" and not cell.unusable
    given = S.field_scale(disc_field(40), 0.07, given=0.2)
    assert given.source == "given" and given.um_per_px == 0.2 and given.flags == []
    j = S.field_scale(disc_field(40), 0.07).as_json()
    assert j["scale_source"] == "estimated" and j["um_per_px"] == pytest.approx(S.RBC_UM / 40 * S.ROUND_FRAC, rel=0.08)
    smear = Image.open(data_root / "bccd/BCCD/JPEGImages/BloodImage_00001.jpg").convert("RGB")
    assert "blurred" not in S.field_scale(smear, 0.07).flags
    blurred = S.field_scale(smear.filter(ImageFilter.GaussianBlur(25)), 0.07)  # a quarter of a red cell
    assert "blurred" in blurred.flags and blurred.unusable


def test_count_cli_scale_json_bad_scale_and_non_smear(data_root, tmp_path):
    bccd = data_root / "bccd/BCCD/JPEGImages/BloodImage_00001.jpg"
    r = runner.invoke(app, ["count", str(bccd), "--um-per-px", "0"])
    assert r.exit_code == 2 and "--um-per-px 0.0: must be a number from 0.02 to 5 µm per pixel" in r.output
    blank = tmp_path / "blank.png"
    Image.new("RGB", (640, 480), (230, 225, 220)).save(blank)
    cell = data_root / "wbc_seg/dataset1/001.bmp"
    r = runner.invoke(app, ["count", str(bccd), str(blank), str(cell), "--json", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    imgs = {i["file"]: i for i in json.loads((tmp_path / "c.json").read_text())["images"]}
    b = imgs[str(bccd)]
    assert b["scale_source"] == "estimated" and 0.05 < b["um_per_px"] < 0.11 and len(b["cells"]) == 1
    assert imgs[str(blank)]["cells"] == [] and imgs[str(blank)]["flags"][0] == "no_red_cells"
    c = imgs[str(cell)]
    assert c["flags"] == ["single_cell"] and c["scale_source"] == "fallback" and len(c["cells"]) == 1
    x0, y0, x1, y1 = c["cells"][0]["box"]
    assert 0 <= x0 < x1 <= 120 and 0 <= y0 < y1 <= 120 and (x1 - x0) > 40  # the WBC, not a speck
    r = runner.invoke(app, ["count", str(bccd), "--um-per-px", "0.0725", "--json", str(tmp_path / "g.json")])
    g = json.loads((tmp_path / "g.json").read_text())["images"][0]
    assert r.exit_code == 0 and g["scale_source"] == "given" and g["um_per_px"] == 0.0725


def test_huge_fields_are_refused_naming_the_limit(monkeypatch):
    from edge_wbc.assets import assets_dir
    from edge_wbc.errors import ImageError
    from edge_wbc.runtime import TFLiteSegmenter
    from edge_wbc.tasks import count as count_mod
    from edge_wbc.tasks import segment as seg_mod

    a = assets_dir()
    sc = count_mod.SmearCounter(a / "smear_unet_int8.tflite", a / "bccd4_int8.tflite",
                                cell_model=a / "wbc_unet_int8.tflite")
    monkeypatch.setattr(count_mod, "MAX_DETECT_PIXELS", 1000)
    img = Image.new("RGB", (200, 100))
    with pytest.raises(ImageError, match=r"200x100 px is 200x100 px at the detector.s scale, over the limit of 1,000"):
        sc.windowed(sc.cell, img, 1.0)
    monkeypatch.setattr(seg_mod, "MAX_SEGMENT_PIXELS", 1000)
    with pytest.raises(ImageError, match=r"over the limit of 1,000 px \(edge_wbc.tasks.segment.MAX_SEGMENT_PIXELS\)"):
        seg_mod.segment_scaled(TFLiteSegmenter(a / "wbc_unet_int8.tflite"), disc_field(40), um_per_px=0.2)


def test_segment_default_resamples_fields_to_the_training_scale(data_root, monkeypatch):
    from edge_wbc.assets import assets_dir
    from edge_wbc.runtime import TFLiteSegmenter
    from edge_wbc.tasks.segment import segment_scaled

    seg = TFLiteSegmenter(assets_dir() / "wbc_unet_int8.tflite")
    seen = []
    real = seg.predict_tiled
    monkeypatch.setattr(seg, "predict_tiled", lambda img, window=None: seen.append(img.size) or real(img, window))
    img = disc_field(40)  # 0.1875 um/px estimated -> 0.75 of the size at 0.25 um/px
    wbc, nuc, fs = segment_scaled(seg, img)
    assert fs.source == "estimated" and wbc.shape == (480, 640) and nuc.shape == (480, 640)
    f = fs.um_per_px / 0.25
    assert seen == [(round(640 * f), round(480 * f))]
    seen.clear()
    wbc, _, fs = segment_scaled(seg, Image.open(data_root / "wbc_seg/dataset1/001.bmp").convert("RGB"))
    assert fs.single_cell and seen == [] and wbc.shape == (120, 120) and wbc.sum() > 1000  # resized whole, as trained
