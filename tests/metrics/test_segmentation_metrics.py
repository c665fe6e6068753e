"""Dice / IoU (pixel and grid), label_grid, seg_report against hand-computed values (fast, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_wbc.metrics.segmentation import block_mean, dice_iou, dice_summary, label_grid, label_grids, seg_report


def _m(rows):
    return np.array(rows, float)[None]


def test_dice_iou_by_hand():
    pred = _m([[1, 1, 0, 0], [1, 1, 0, 0]])  # 4 px
    tgt = _m([[0, 1, 1, 0], [0, 1, 1, 0]])  # 4 px, overlap 2
    d, i = dice_iou(pred, tgt)
    assert d.tolist() == pytest.approx([2 * 2 / 8])
    assert i.tolist() == pytest.approx([2 / 6])


def test_dice_iou_threshold_unknown_and_empty():
    # pred is thresholded at > 0.5 (0.5 itself is background); target -1 pixels are ignored
    pred = _m([[0.5, 0.51, 0.9, 0.0]])
    tgt = _m([[1, 1, -1, 0]])
    d, i = dice_iou(pred, tgt)  # p = {1} (px 2 ignored), t = {0, 1}: inter 1
    assert d.tolist() == pytest.approx([2 / 3]) and i.tolist() == pytest.approx([1 / 2])
    d, i = dice_iou(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    assert d.tolist() == [1.0, 1.0] and i.tolist() == [1.0, 1.0]  # both empty: perfect
    d, i = dice_iou(_m([[1, 0]]), _m([[0, 0]]))
    assert d.tolist() == [0.0] and i.tolist() == [0.0]


def test_dice_iou_grid_scores_blocks():
    # 4x4 maps, grid 2 -> 2x2 blocks. Target: top-left block WBC, the rest background, bottom-right unknown.
    tgt = np.zeros((1, 4, 4))
    tgt[0, :2, :2] = 1
    tgt[0, 2:, 2:] = -1
    pred = np.zeros((1, 4, 4))
    pred[0, :2, :2] = [[1, 1], [1, 0]]  # block mean 0.75 -> WBC
    pred[0, :2, 2:] = [[1, 1], [0, 0]]  # block mean 0.5 -> not (> 0.5 only)
    pred[0, 2:, 2:] = 1  # unknown block: ignored
    d, i = dice_iou(pred, tgt, grid=2)
    assert d.tolist() == [1.0] and i.tolist() == [1.0]
    # pixel level the same maps score: p = 3 + 2 = 5 px (unknown ignored), t = 4, inter 3
    d1, i1 = dice_iou(pred, tgt)
    assert d1.tolist() == pytest.approx([6 / 9]) and i1.tolist() == pytest.approx([3 / 6])
    # a block with a single unknown pixel is unknown as a whole
    tgt2 = tgt.copy()
    tgt2[0, 0, 0] = -1
    d2, _ = dice_iou(pred, tgt2, grid=2)
    assert d2.tolist() == [1.0]  # only background blocks left, pred has none of them -> both empty
    pred3 = pred.copy()
    pred3[0, 2:, :2] = 1  # a false positive block
    d3, i3 = dice_iou(pred3, tgt, grid=2)
    assert d3.tolist() == pytest.approx([2 / 3]) and i3.tolist() == pytest.approx([1 / 2])


def test_block_mean_and_bad_grid():
    x = np.arange(16, dtype=float).reshape(1, 4, 4)
    assert block_mean(x, 2).tolist() == [[[2.5, 4.5], [10.5, 12.5]]]
    with pytest.raises(ValueError, match="grid 3 does not divide the 4x4 maps"):
        block_mean(x, 3)


def _grid_masks(k, n=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 2, (n, size // k, size // k))
    coarse[:, 0, 0], coarse[:, 0, 1] = 0, 1  # neither empty nor full
    return coarse.repeat(k, 1).repeat(k, 2)


def test_label_grid_finds_the_annotation_grid():
    assert label_grid(_grid_masks(4)) == 4
    assert label_grid(_grid_masks(2)) == 2
    m = _grid_masks(4)
    m[0, 1, 1] = 1 - m[0, 1, 1]  # one pixel off the grid
    assert label_grid(m) == 1  # 4 fails; 2 fails too (the flipped pixel breaks its 2x2 block)
    assert label_grid(_grid_masks(4, n=7)) == 1  # fewer than min_masks informative masks
    assert label_grid(_grid_masks(4, n=7), min_masks=7) == 4
    # empty, full and partly-unknown masks are not informative
    extra = np.concatenate([_grid_masks(4, n=7), np.zeros((3, 32, 32)), np.ones((3, 32, 32))])
    assert label_grid(extra) == 1
    unk = _grid_masks(4, n=8)  # one of them partly unknown: 7 informative left
    unk[0, 5, 5] = -1
    assert label_grid(unk) == 1
    with pytest.raises(ValueError, match=r"non-empty \(N, H, W\) array, got shape \(32, 32\)"):
        label_grid(np.zeros((32, 32)))


def test_label_grid_largest_divisor_up_to_an_eighth():
    # 48 px masks on a 6 px grid: 6 = 48 // 8 is the largest k tried; 3 and 2 also fit, 6 wins
    assert label_grid(_grid_masks(6, size=48)) == 6
    # 40 px on a 5 px grid: 5 == 40 // 8
    assert label_grid(_grid_masks(5, size=40)) == 5


class _Split:
    def __init__(self, labels, groups):
        self.labels, self.groups = labels, groups

    def __len__(self):
        return len(self.labels)


def test_label_grids_per_label_and_group():
    wbc = _grid_masks(4, n=8)
    nuc = _grid_masks(1, n=8, seed=3)
    labels = np.stack([wbc, nuc], -1)
    out = label_grids(_Split(labels, ["a"] * 8), ("wbc", "nucleus"))
    assert out == {"wbc/all": 4, "wbc/a": 4}


def test_seg_report_values_groups_and_grid():
    pred = np.zeros((3, 4, 4, 1))
    tgt = np.zeros((3, 4, 4, 1))
    tgt[0, :2, :2, 0] = 1
    pred[0, :2, :2, 0] = 1  # dice 1
    tgt[1, :2, :2, 0] = 1
    pred[1, :1, :2, 0] = 1  # p 2, t 4, inter 2: dice 4/6, iou 0.5 ; at grid 2: block mean 0.5 -> empty: dice 0
    tgt[2] = -1  # all unknown: left out
    rep = seg_report(pred, tgt, ("wbc",), groups=["x", "y", "y"], grids={"wbc/all": 2})
    assert set(rep) == {"wbc/all", "wbc/x", "wbc/y"}
    a = rep["wbc/all"]
    assert a["n"] == 2 and a["dice"] == pytest.approx((1 + 4 / 6) / 2) and a["iou"] == pytest.approx(0.75)
    assert a["dice_per_image"] == [1.0, 0.6667]
    assert a["grid"] == 2 and a["dice_grid"] == pytest.approx(0.5) and a["iou_grid"] == pytest.approx(0.5)
    assert a["dice_grid_per_image"] == [1.0, 0.0]
    assert rep["wbc/y"] == {"dice": pytest.approx(4 / 6), "iou": 0.5, "n": 1, "dice_per_image": [0.6667]}
    assert seg_report(pred, tgt, ("wbc",), digits=None)["wbc/all"]["dice_per_image"][1] == pytest.approx(2 / 3)
    s = dice_summary(rep)
    assert s.startswith("wbc/all Dice 0.8333 (0.5000 at its 2 px label grid), wbc/x Dice 1.0000")
    assert s.endswith("wbc/y Dice 0.6667")


def test_grid_target_block_half_known_wbc_is_background():
    # a block whose target is half WBC has mean 0.5: not WBC (> 0.5 only), as for the prediction
    tgt = np.zeros((1, 2, 4))
    tgt[0, :, :1] = 1  # left block: mean 0.5
    pred = np.zeros((1, 2, 4))
    pred[0, :, :2] = 1  # left block predicted
    d, i = dice_iou(pred, tgt, grid=2)
    assert d.tolist() == [0.0] and i.tolist() == [0.0]


def test_label_grid_steps_down_one_at_a_time_and_non_square_masks():
    assert label_grid(_grid_masks(4, size=40)) == 4  # 5 fails, 4 fits (a step of 2 would land on 3, then 1)
    wide = _grid_masks(4, size=48)[:, :, :40]  # 48 high, 40 wide, 4 px grid
    assert wide.shape[1:] == (48, 40) and label_grid(wide) == 4


def test_block_mean_needs_a_grid_dividing_both_sides():
    with pytest.raises(ValueError, match="grid 3 does not divide the 6x4 maps"):
        block_mean(np.zeros((1, 6, 4)), 3)


def test_label_grids_reports_a_2px_grid():
    out = label_grids(_Split(_grid_masks(2, n=8)[..., None], None), ("wbc",))
    assert out == {"wbc/all": 2}


def test_seg_report_keeps_known_background_images_and_every_group():
    pred = np.zeros((3, 4, 4, 1))
    tgt = np.zeros((3, 4, 4, 1))
    tgt[0] = -1  # group "a": unknown everywhere, left out
    tgt[1, :2, :2, 0] = 1
    pred[1, :2, :2, 0] = 1  # group "b": perfect
    # image 2 (group "b"): known background, nothing predicted: dice 1, and it counts
    rep = seg_report(pred, tgt, ("wbc",), groups=["a", "b", "b"])
    assert set(rep) == {"wbc/all", "wbc/b"}
    assert rep["wbc/b"]["n"] == 2 and rep["wbc/b"]["dice_per_image"] == [1.0, 1.0]
    assert rep["wbc/all"]["n"] == 2
