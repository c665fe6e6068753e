"""Crop, channel and passthrough geometry of preprocessing, on synthetic images with known pixels (fast)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_wbc import preprocess as pp
from edge_wbc.spec import ModelSpec


def _columns(w: int, h: int) -> np.ndarray:
    """RGB image whose pixel value in every channel is 10 * column + row."""
    a = (np.arange(w)[None, :] * 10 + np.arange(h)[:, None]).astype(np.uint8)
    return np.repeat(a[..., None], 3, axis=2)


def test_center_square_crops_the_middle_of_a_wide_image():
    spec = ModelSpec("classification", 8, 8, ("a", "b"), crop="center_square", resample="nearest")
    x = pp.resize_image(Image.fromarray(_columns(12, 8)), spec)  # 12 wide: columns 2..9 are kept
    assert x.shape == (8, 8, 3)
    assert x[0, :, 0].tolist() == [c * 10 for c in range(2, 10)]
    assert x[:, 0, 0].tolist() == [20 + r for r in range(8)]


def test_center_square_crops_the_middle_of_a_tall_image():
    spec = ModelSpec("classification", 8, 8, ("a", "b"), crop="center_square", resample="nearest")
    x = pp.resize_image(Image.fromarray(_columns(8, 11)), spec)  # 11 high: rows (11-8)//2 = 1 .. 8
    assert x[:, 0, 0].tolist() == list(range(1, 9))
    assert x[0, :, 0].tolist() == [c * 10 + 1 for c in range(8)]


def test_no_crop_stretches_the_whole_image():
    spec = ModelSpec("classification", 8, 8, ("a", "b"), resample="nearest")
    x = pp.resize_image(Image.fromarray(_columns(16, 8)), spec)
    assert x[0, :, 0].tolist() == [c * 10 for c in range(1, 16, 2)]  # nearest: the centre of each 2 px


def test_one_channel_input_is_luminance_not_red():
    spec = ModelSpec("classification", 8, 8, ("a", "b"), channels=1)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    x = pp.resize_image(Image.fromarray(red), spec)
    assert x.shape == (8, 8, 1) and x.dtype == np.uint8
    assert set(x.ravel().tolist()) == {round(200 * 299 / 1000)}  # ITU-R 601-2 luma: 60, not the red 200
    green = np.zeros((8, 8, 3), np.uint8)
    green[..., 1] = 200
    assert set(pp.resize_image(Image.fromarray(green), spec).ravel().tolist()) == {round(200 * 587 / 1000)}


def test_preprocess_array_passthrough_only_when_nothing_to_do():
    spec = ModelSpec("classification", 8, 8, ("a", "b"))
    imgs = np.stack([_columns(8, 8), _columns(8, 8)[::-1]])
    assert pp.preprocess_array(imgs, spec) is imgs


def test_preprocess_array_crops_even_at_the_spec_size():
    # input already 8 x 12 (the spec's size), but the spec asks for a centre square: crop, then stretch back
    spec = ModelSpec("classification", 8, 12, ("a", "b"), crop="center_square", resample="nearest")
    imgs = _columns(12, 8)[None]
    out = pp.preprocess_array(imgs, spec)
    assert out.shape == (1, 8, 12, 3)
    assert not np.array_equal(out, imgs)
    np.testing.assert_array_equal(out[0], pp.resize_image(Image.fromarray(imgs[0]), spec))
    assert out[0, 0, 0, 0] == 20 and out[0, 0, -1, 0] == 90  # columns 2..9 only


def test_preprocess_array_grey_and_one_channel_arrays():
    spec = ModelSpec("classification", 8, 8, ("a", "b"), channels=1)
    grey = np.full((2, 8, 8), 77, np.uint8)  # (N, H, W): read as grey RGB
    out = pp.preprocess_array(grey, spec)
    assert out.shape == (2, 8, 8, 1) and set(out.ravel().tolist()) == {77}
    rgb_spec = ModelSpec("classification", 8, 8, ("a", "b"))
    out3 = pp.preprocess_array(np.full((1, 8, 8, 1), 50, np.uint8), rgb_spec)
    assert out3.shape == (1, 8, 8, 3) and set(out3.ravel().tolist()) == {50}


@pytest.mark.parametrize(
    "values, is_float, want",
    [
        ([0.0, 0.5, 1.0], True, [0, 128, 255]),  # float 0-1
        ([0, 128, 255], False, [0, 128, 255]),  # 8-bit range
        ([0, 257, 65535], False, [0, 1, 255]),  # 16-bit range
        ([0, 50000, 100000], False, [0, 128, 255]),  # larger: by the maximum
        ([-5, float("nan"), 255], True, [0, 0, 255]),  # negative and NaN -> 0
    ],
)
def test_scale_to_8bit(values, is_float, want):
    a = np.array(values, np.float32 if is_float else np.int64)
    assert pp._scale_to_8bit(a).tolist() == want


@pytest.mark.parametrize(
    "values, is_float, want",
    [
        ([float("inf"), float("-inf"), 100.0], True, [0, 0, 100]),  # infinities -> 0, then the 8-bit range
        ([0, 1], False, [0, 1]),  # integers up to 1 are 8-bit values, not 0-1
        ([0.0, 2.0], True, [0, 2]),  # floats above 1 are 8-bit values
        ([0, 256], False, [0, 1]),  # just above 255: the 16-bit range
        ([0, 60010, 65535], False, [0, 234, 255]),  # divided by 65535 (by 65536: 233)
    ],
)
def test_scale_to_8bit_range_edges(values, is_float, want):
    a = np.array(values, np.float64 if is_float else np.int64)
    assert pp._scale_to_8bit(a).tolist() == want


def test_scale_to_8bit_empty():
    out = pp._scale_to_8bit(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 3) and out.dtype == np.uint8


def test_preprocess_array_grey_keeps_its_layout_and_dtype():
    spec = ModelSpec("classification", 8, 8, ("a", "b"), resample="nearest")
    grey = _columns(8, 8)[..., 0][None]  # (1, 8, 8): column-and-row pattern
    out = pp.preprocess_array(grey, spec)
    assert out.shape == (1, 8, 8, 3) and out.dtype == np.uint8
    assert all(np.array_equal(out[0, ..., ch], grey[0]) for ch in range(3))
    cropped = pp.preprocess_array(_columns(12, 8)[None], ModelSpec("classification", 8, 8, ("a", "b"),
                                                                   crop="center_square", resample="nearest"))
    assert cropped.dtype == np.uint8 and cropped[0, 0, :, 0].tolist() == [c * 10 for c in range(2, 10)]


def test_preprocess_array_errors_name_the_problem():
    from edge_wbc.errors import ImageError

    spec = ModelSpec("classification", 8, 8, ("a", "b"))
    with pytest.raises(ImageError, match=r"expected an array of images \(N, H, W, C\), got shape \(8, 8\)"):
        pp.preprocess_array(np.zeros((8, 8), np.uint8), spec)
    with pytest.raises(ImageError, match="expected uint8 RGB pixels, got dtype float32"):
        pp.preprocess_array(np.zeros((1, 8, 8, 3), np.float32), spec)


def test_center_square_offsets_are_floored_on_odd_margins():
    # 11 x 8: margin 3, left = 3 // 2 = 1 (not PIL's rounding of 1.5 to 2); 8 x 12 (tall): top = 4 // 2 = 2
    spec = ModelSpec("classification", 8, 8, ("a", "b"), crop="center_square", resample="nearest")
    x = pp.resize_image(Image.fromarray(_columns(11, 8)), spec)
    assert x[0, :, 0].tolist() == [c * 10 for c in range(1, 9)]
    x = pp.resize_image(Image.fromarray(_columns(8, 12)), spec)
    assert x[:, 0, 0].tolist() == list(range(2, 10))


def test_preprocess_array_grey_non_square_is_the_grey_rgb_image():
    # (N, H, W) grey input = the same pixels in all three channels, cropped and resized as that RGB image
    spec = ModelSpec("classification", 8, 8, ("a", "b"), crop="center_square", resample="nearest")
    grey = _columns(12, 8)[..., 0][None]  # (1, 8, 12): the centre square is columns 2..9
    out = pp.preprocess_array(grey, spec)
    want = pp.resize_image(Image.fromarray(grey[0]).convert("RGB"), spec)
    assert out.shape == (1, 8, 8, 3) and out[0, 0, :, 0].tolist() == [c * 10 for c in range(2, 10)]
    np.testing.assert_array_equal(out[0], want)


def test_preprocess_array_one_pixel_high_rgb_image():
    # a (1, 1, W, 3) array is one RGB row, not a grey image of 3 x W
    spec = ModelSpec("classification", 8, 8, ("a", "b"), resample="nearest")
    row = np.zeros((1, 1, 8, 3), np.uint8)
    row[0, 0, :, 0] = np.arange(1, 9) * 10
    out = pp.preprocess_array(row, spec)
    assert out.shape == (1, 8, 8, 3)
    assert out[0, :, :, 0].tolist() == [list(range(10, 90, 10))] * 8 and out[0, ..., 1:].max() == 0


def test_scale_to_8bit_just_above_the_16_bit_range_scales_by_the_maximum():
    # max 65536: no longer 16-bit, divided by its maximum; 33025 -> 33025 / 65536 * 255 + 0.5 = 129.0 -> 128
    # (by 65535 it would round to 129)
    a = np.array([0, 33025, 65536], np.int64)
    assert pp._scale_to_8bit(a).tolist() == [0, int(33025 / 65536 * 255 + 0.5), 255]
    assert int(33025 / 65536 * 255 + 0.5) != int(33025 / 65535 * 255 + 0.5)
