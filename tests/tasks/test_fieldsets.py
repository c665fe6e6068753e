"""Fields at the detector's scale: targets, crops, windows, and the counter's decode of the detector's map."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from edge_wbc.defaults import DETECTOR_TARGET_SHRINK
from edge_wbc.runtime.segmenter import TFLiteSegmenter
from edge_wbc.spec import ModelSpec
from edge_wbc.tasks import fieldsets as fsets
from edge_wbc.tasks.count import SmearCounter


def test_target_is_the_shrunk_ellipse_of_each_box():
    t = fsets.target_map((100, 60), [(10, 10, 50, 50), (60, 20, 90, 40)], shrink=0.8)
    assert t.dtype == np.uint8 and set(np.unique(t)) == {0, 1}
    left, right = t[:, :55], t[:, 55:]
    # ellipse area: pi/4 * (0.8 w) * (0.8 h), within the rasterisation of a few pixels
    assert left.sum() == pytest.approx(np.pi / 4 * 32 * 32, rel=0.06)
    assert right.sum() == pytest.approx(np.pi / 4 * 24 * 16, rel=0.12)  # PIL's ellipse bounds are inclusive
    ys, xs = np.nonzero(left)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (14, 46, 14, 46)  # 30 +- 16: the box shrunk about its centre
    assert t[0].sum() == 0 and t[:, 0].sum() == 0


def test_pad_to_zeros_or_reflection():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    z = fsets.pad_to(a, 5, 6)
    assert z.shape == (5, 6) and (z[:3, :4] == a).all() and z[3:].sum() == 0 and z[:, 4:].sum() == 0
    r = fsets.pad_to(a, 8, 9, "reflect")  # longer than the image itself: reflected more than once
    assert r.shape[0] >= 8 and r.shape[1] >= 9 and (r[:3, :4] == a).all() and r[3, 0] == a[1, 0]
    assert fsets.pad_to(a, 2, 2) is a


def _field(source="bccd", split="train"):
    img = np.full((90, 140, 3), 230, np.uint8)
    box = (40.0, 30.0, 64.0, 54.0)
    im = Image.fromarray(img)
    ImageDraw.Draw(im).ellipse(box, fill=(60, 20, 120))  # a dark purple WBC
    return fsets.CanonField(np.asarray(im), fsets.target_map((140, 90), [box]), np.array([box], np.float32),
                            source, split, "x.jpg", 0.5, True)


def test_crops_keep_image_and_target_aligned():
    s = fsets.CropSampler([_field()], crop=32, seed=3, wbc_share=1.0)
    x, t = s.batch(24)
    assert x.shape == (24, 32, 32, 3) and t.shape == (24, 32, 32, 1) and x.dtype == np.float32
    assert set(np.unique(t)) <= {0.0, 1.0} and t.sum() > 0
    purple = (x[..., 2] > x[..., 0] + 30) & (x.mean(axis=-1) < 150)  # the WBC; the zero padding is black, not purple
    on = t[..., 0] > 0.5
    # target pixels are WBC pixels (blur, JPEG and noise move the edges a little), and each crop's target
    # sits on its WBC: centroids within 2 px
    assert purple[on].mean() > 0.9
    for i in range(len(x)):
        if on[i].sum() > 20 and purple[i].sum() > 20:
            assert np.allclose(np.argwhere(on[i]).mean(0), np.argwhere(purple[i]).mean(0), atol=2.0)


def test_crop_sampler_balances_sources():
    s = fsets.CropSampler([_field("bccd")] * 9 + [_field("smartphone_pig")], crop=32, seed=0)
    s.batch(400)
    assert sum(s.drawn.values()) == 400
    assert 0.4 < s.drawn["smartphone_pig"] / 400 < 0.6  # one source in ten fields still gets half of the crops


def test_windows_of_tile_the_field_without_overlap():
    w = fsets.windows_of(_field(), 64, 64)
    assert len(w) == 2 * 3 and all(x.shape == (64, 64, 3) and t.shape == (64, 64) for x, t in w)
    assert sum(int(t.sum()) for _, t in w) == int(_field().target.sum())


class _Windows(TFLiteSegmenter):
    """predict_windows over a stand-in predict (no model file): each window's map is its mean grey."""

    def __init__(self, k=32):
        self.spec = ModelSpec("segmentation", k, k, ("wbc",))
        self.calls = []

    def predict(self, x):
        self.calls.append(x.shape)
        return (x.mean(axis=-1, keepdims=True) / 255.0).astype(np.float32)


def test_predict_windows_pads_with_black_and_averages_overlaps():
    seg = _Windows(32)
    a = np.full((20, 10, 3), 255, np.uint8)
    m = seg.predict_windows(a, overlap=8)
    assert m.shape == (20, 10, 1) and len(seg.calls) == 1 and np.allclose(m, 1.0)  # small: one padded window
    seg.calls.clear()
    a = (np.arange(70)[None, :, None] * np.ones((40, 1, 3))).astype(np.uint8)
    m = seg.predict_windows(a, overlap=8)
    # windows at x = 0, 19, 38 and y = 0, 8 (evenly spread): every pixel's map is its own value
    assert len(seg.calls) == 3 * 2 and np.allclose(m[..., 0], a[..., 0] / 255.0, atol=1e-6)


class _MapDetector:
    def __init__(self, prob_fn, k=64):
        self.spec = ModelSpec("segmentation", k, k, ("wbc",),
                              metrics={"detector": "fields", "um_per_px": 0.5, "target_shrink": 0.8})
        self.prob_fn = prob_fn

    def predict_windows(self, a, overlap):
        return self.prob_fn(a)[..., None]


def test_canonical_detection_resamples_grows_and_maps_boxes_back():
    sc = SmearCounter.__new__(SmearCounter)
    sc.threshold, sc.det_um, sc.add_nuclei = 0.5, 0.5, False

    def prob(a):  # a WBC map: the shrunk ellipse of a 24 px box at (20, 10) in the resampled field
        assert a.shape == (50, 80, 3)  # 320 x 200 at 0.125 um/px -> x0.25 -> 80 x 50
        return fsets.target_map((80, 50), [(20, 10, 44, 34)], DETECTOR_TARGET_SHRINK).astype(np.float32)

    sc.det = _MapDetector(prob)
    img = Image.new("RGB", (320, 200), (200, 150, 160))
    (box, p), = sc.canonical(img, 0.125 / 0.5)
    assert p == 1.0
    # the found component spans the shrunk ellipse (about 19 px); grown by 1/0.8 and scaled x4 it is the box
    assert np.allclose(box, [80, 40, 176, 136], atol=6)
    # the decode rule (DETECTOR_DECODE): specks below min_area_px, and components whose mean probability is
    # below min_mean_prob (a WBC-sized blob at 0.85), are dropped; the model's own rule wins over the default
    speck = fsets.target_map((80, 50), [(5, 5, 11, 11)], 1.0).astype(np.float32)
    unsure = 0.85 * fsets.target_map((80, 50), [(50, 10, 74, 34)], 0.8).astype(np.float32)
    sc.det = _MapDetector(lambda a: np.maximum(speck, unsure))
    assert sc.canonical(img, 0.25) == []
    sc.det.spec.metrics["decode"] = {"min_mean_prob": 0.8, "min_area_px": 20}
    assert len(sc.canonical(img, 0.25)) == 2


def test_canonical_detection_adds_the_stained_nuclei_the_model_missed():
    from edge_wbc.runtime.nuclei import NucleusRule

    sc = SmearCounter.__new__(SmearCounter)
    sc.threshold, sc.det_um, sc.add_nuclei, sc.nuclei_rule = 0.5, 0.5, True, NucleusRule()
    img = Image.new("RGB", (160, 100), (235, 225, 230))  # at the canonical scale already (s = 1)
    d = ImageDraw.Draw(img)
    d.ellipse([20, 20, 40, 40], fill=(110, 60, 160))  # a nucleus the model finds too
    d.ellipse([110, 50, 130, 70], fill=(110, 60, 160))  # one it misses
    sc.det = _MapDetector(lambda a: fsets.target_map((160, 100), [(16, 16, 44, 44)], 0.8).astype(np.float32))
    found = sc.canonical(img, 1.0)
    assert len(found) == 2
    (model_box, p_model), (nucleus_box, core, by) = found
    assert by == "nuclei"
    assert p_model == 1.0 and np.allclose(model_box, [16, 16, 44, 44], atol=3)
    assert nucleus_box == [108, 48, 133, 73] and 0.5 < core <= 1.0  # the joined nucleus, square
    sc.add_nuclei = False
    assert len(sc.canonical(img, 1.0)) == 1
