"""The WBC-centred crop, the quality flags and the LOSO summary: geometry and values by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from edge_wbc.errors import SpecError
from edge_wbc.runtime.quality import DEFAULT_LIMITS, QualityLimits, find_flags, fit_limits, image_flags, measures
from edge_wbc.runtime.wbccrop import WBCFind, crop_around, crop_segmenter, find_wbc
from edge_wbc.spec import ModelSpec


def _grid(w, h):
    """An image whose pixel (x, y) encodes x in red and y in green: crops can be read back."""
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return Image.fromarray(np.stack([x % 256, y % 256, np.zeros_like(x)], -1).astype(np.uint8))


def test_crop_around_is_centred_square_of_ratio_times_the_longer_side():
    img = _grid(200, 100)
    c = crop_around(img, (80, 30, 120, 50), ratio=1.5)  # 40 x 20 box -> 60 px square around (100, 40)
    assert c.size == (60, 60)
    a = np.asarray(c)
    assert a[0, 0, 0] == 70 and a[0, 0, 1] == 10  # left = 100 - 30, top = 40 - 30
    # clamped to the image's longer side, reflect-padded where it leaves the image
    c = crop_around(img, (0, 0, 190, 100), ratio=2.0)
    assert c.size == (200, 200)
    # no box: the centre square
    c = crop_around(img, None)
    assert c.size == (100, 100) and np.asarray(c)[0, 0, 0] == 50


def test_find_wbc_on_real_cells_and_on_blank(pbc_files):
    seg = crop_segmenter("wbc_unet_int8")
    f = find_wbc(seg, Image.open(pbc_files["neutrophil"][0]))
    assert f.found and 0.1 < f.area_frac < 0.9 and f.n_components >= 1
    x0, y0, x1, y1 = f.box
    assert 20 < (x0 + x1) / 2 < 108 and 20 < (y0 + y1) / 2 < 108  # the WBC sits near the centre of a PBC crop
    assert not find_wbc(seg, Image.new("RGB", (100, 100), "white")).found


def test_quality_flags_by_construction(pbc_files):
    cell = np.asarray(Image.open(pbc_files["monocyte"][0]).convert("RGB").resize((64, 64)))
    assert image_flags(cell, 128, 64) == []
    gray = np.repeat(cell.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
    assert image_flags(gray, 128, 64) == ["grayscale"]
    assert "exposure" in image_flags(np.full((64, 64, 3), (200, 30, 30), np.uint8), 128, 64)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert image_flags(noise, 128, 64) == ["noise"]
    assert image_flags(cell, 8, 64) == ["too_small"]  # 8x upsampling > 4
    blurred = np.asarray(Image.fromarray(cell).filter(ImageFilter.GaussianBlur(6)))
    lim = QualityLimits(min_focus=measures(cell)["focus"] / 4)
    assert "blur" in image_flags(blurred, 128, 64, lim) and "blur" not in image_flags(cell, 128, 64, lim)


def test_find_flags_rules():
    assert find_flags(None, (100, 100)) == []
    assert find_flags(WBCFind(False, None, 0, 0, 0), (100, 100)) == ["no_wbc"]
    field = WBCFind(True, (100, 100, 180, 170), 0.02, 1, 0.9)
    assert find_flags(field, (640, 480)) == ["not_a_single_cell"]  # an 80 px WBC on a 480 px field
    assert find_flags(field, (360, 360)) == []  # a CellaVision-size frame is below the size rule
    big = WBCFind(True, (100, 100, 300, 300), 0.2, 1, 0.9)
    assert find_flags(big, (640, 480)) == []


def test_fit_limits_takes_a_margin_beyond_every_source():
    a = [{"chroma": 100.0, "contrast": 40.0, "focus": 200.0, "clipped": 0.0, "noise": 0.2}] * 50
    b = [{"chroma": 90.0, "contrast": 20.0, "focus": 10.0, "clipped": 0.1, "noise": 0.4}] * 50
    lim = fit_limits({"a": a, "b": b}, margin=0.5)
    assert lim.min_focus == pytest.approx(5.0)  # half the lowest source
    assert lim.max_noise == pytest.approx(0.8)  # twice the highest
    assert lim.min_chroma == DEFAULT_LIMITS.min_chroma  # 12 < 45: the default floor stays
    assert QualityLimits.from_dict(lim.to_dict()) == lim


def test_spec_wbc_crop_validation():
    kw = dict(task="classification", input_height=64, input_width=64, labels=("a", "b"))
    s = ModelSpec(**kw, crop="wbc", crop_ratio=1.5, crop_model="wbc_unet_int8")
    assert ModelSpec.from_dict(s.to_dict()) == s
    assert "crop_ratio" not in ModelSpec(**kw).to_dict()  # other specs keep their JSON keys
    with pytest.raises(SpecError, match="crop_ratio 0.5: a 'wbc' crop needs a ratio between 1 and 4"):
        ModelSpec(**kw, crop="wbc", crop_ratio=0.5, crop_model="m")
    with pytest.raises(SpecError, match="a 'wbc' crop needs crop_model"):
        ModelSpec(**kw, crop="wbc", crop_ratio=1.5)
    with pytest.raises(SpecError, match="crop_ratio and crop_model are for crop 'wbc', not 'none'"):
        ModelSpec(**kw, crop_ratio=1.5)


def test_loso_summary_by_hand():
    from edge_wbc.training.loso import summarize

    p = np.array([[0.9, 0.1, 0, 0, 0], [0.2, 0.8, 0, 0, 0], [0.6, 0.4, 0, 0, 0], [0.1, 0.0, 0.9, 0, 0]])
    y = np.array([0, 0, 1, 2])
    s = summarize(p, y, temperature=1.0, threshold=0.7)
    assert s["top1"] == 0.5  # rows 0 and 3 right
    assert s["recall"] == {"basophil": 0.5, "eosinophil": 0.0, "lymphocyte": 1.0}
    # F1: basophil 2*1/(2+1+1)=0.5, eosinophil 0 (1 fp, 1 fn), lymphocyte 1 -> mean 0.5
    assert s["macro_f1"] == pytest.approx(0.5)
    assert s["coverage"] == 0.75  # 0.6 is below 0.7
    assert s["answered_wrong"] == 0.25  # row 1 answered and wrong
    assert s["answered_accuracy"] == pytest.approx(2 / 3)


def test_large_images_are_cropped_at_their_stained_nucleus(data_root, pbc_files):
    """An image of at least field_min_side px is cropped around its largest stained nucleus at the
    red-cell scale (locate_wbc): on a BCCD field of one WBC the crop sits on the WBC's VOC box; a
    smartphone field, whose nuclei span a few % of its side, is not a single cell; a PBC crop upscaled
    to 432 px has no red-cell scale and keeps the segmenter's find."""
    from edge_wbc.assets import default_classifier
    from edge_wbc.data.fields import field_list
    from edge_wbc.runtime import TFLiteClassifier
    from edge_wbc.tasks.cells import CellAnswerer, locate_wbc

    answerer = CellAnswerer(TFLiteClassifier(default_classifier()))
    f = next(f for f in field_list(data_root, ("bccd",), "test") if len(f.boxes) == 1)
    img = Image.open(f.path).convert("RGB")
    loc = locate_wbc(img)
    assert loc is not None and loc.wbc_sized == 1 and loc.share > DEFAULT_LIMITS.min_field_nucleus_share
    x0, y0, x1, y1 = f.boxes[0]
    cx, cy = (loc.box[0] + loc.box[2]) / 2, (loc.box[1] + loc.box[3]) / 2
    assert x0 <= cx <= x1 and y0 <= cy <= y1  # the nucleus is inside the annotated WBC
    a = answerer.answer_image(img)
    assert "not_a_single_cell" not in a.flags and a.wbc_box == pytest.approx(loc.box)

    pig = Image.open(sorted((data_root / "smartphone_pig" / "test" / "images").glob("389_*.jpg"))[0]).convert("RGB")
    loc = locate_wbc(pig)
    assert loc is not None and 0.02 < loc.share < DEFAULT_LIMITS.min_field_nucleus_share
    a = answerer.answer_image(pig)
    assert a.prediction == "uncertain" and "not_a_single_cell" in a.flags

    # a smartphone field where the nucleus rule finds no nucleus (the segmenter's coarse find said one WBC,
    # and the cell was answered `neutrophil` before session 18): its red cells say it is 277 µm wide
    wide = Image.open(next((data_root / "smartphone_pig" / "test" / "images").glob("416_*.jpg"))).convert("RGB")
    assert locate_wbc(wide) is None
    a = answerer.answer_image(wide)
    assert a.prediction == "uncertain" and a.flags == ["not_a_single_cell"]

    for p in pbc_files["neutrophil"][:3]:
        crop = Image.open(p).convert("RGB").resize((432, 432), Image.Resampling.BICUBIC)
        assert locate_wbc(crop) is None  # too few red cells for a scale: the segmenter's find, as before
        assert "not_a_single_cell" not in answerer.answer_image(crop).flags
    assert locate_wbc(Image.new("RGB", (500, 500), (230, 220, 225))) is None


def test_wide_view_needs_both_a_wide_view_and_many_red_cells():
    """A large image is a field by its red cells only when its shorter side spans at least 80 µm and it
    holds at least 60 red-cell discs; no scale (None) is never a wide view."""
    from edge_wbc.runtime.quality import QualityLimits, wide_view

    assert wide_view(80.0, 60.0) and wide_view(277.0, 849.0)
    assert not wide_view(79.9, 849.0)  # a single-cell frame's view, however many discs the mask holds
    assert not wide_view(277.0, 59.9)  # few red cells: a sparse or misread image, not a field by this rule
    assert not wide_view(None, 1000.0)
    lim = QualityLimits.from_dict({"min_field_view_um": 200.0})  # a model's JSON can move it
    assert not wide_view(150.0, 100.0, lim) and wide_view(250.0, 100.0, lim)


def test_feature_adaptation_skips_what_classify_flags_as_a_field(data_root, pbc_files, tmp_path):
    """adapt --method features takes its cells as classify crops them: a smartphone field (a wide view,
    flagged not_a_single_cell by classify) is skipped, the 20 real cells are used."""
    import shutil

    from edge_wbc.assets import default_classifier
    from edge_wbc.tasks.adapt import adapt_features

    cells = tmp_path / "cells"
    cells.mkdir()
    for i, p in enumerate([p for ps in pbc_files.values() for p in ps][:20]):
        shutil.copy(p, cells / f"{i:02d}{p.suffix}")
    shutil.copy(next((data_root / "smartphone_pig" / "test" / "images").glob("416_*.jpg")), cells / "field.jpg")
    lines = []
    r = adapt_features(default_classifier(), cells, tmp_path / "out", log=lines.append)
    assert (r["images"], r["skipped"]) == (20, 1) and "20 cells used, 1 skipped" in lines[-1]
