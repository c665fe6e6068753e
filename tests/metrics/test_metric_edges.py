"""Edge cases of the metrics that mutation testing showed unpinned (scripts/mutation.sh): integer
confusion counts, classes never predicted, F1 below 1/2, single-class sets, the default ECE binning,
empty inputs without NumPy RuntimeWarnings, and the grid Dice of non-binary targets."""

from __future__ import annotations

import numpy as np
import pytest

from edge_wbc.metrics.classification import (
    accuracy,
    binary_auc,
    classification_report,
    confusion,
    ece,
    macro_f1,
    ovr_auc,
    per_class,
)
from edge_wbc.metrics.segmentation import dice_iou, label_grid


def test_confusion_counts_are_integers_and_float_coded_labels_count():
    cm = confusion([0, 1, 1], [0, 1, 0], 2)
    assert cm.dtype == np.int64 and cm.tolist() == [[1, 0], [1, 1]]
    rep = classification_report(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ("a", "b"))
    assert rep["confusion"] == [[1, 0], [1, 1]] and all(type(v) is int for row in rep["confusion"] for v in row)
    # labels read as floats (a CSV, a float npz) are class indices too
    assert confusion(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0]), 2).tolist() == [[1, 0], [1, 1]]
    assert confusion(np.array([0, 1]), np.array([1.0, 1.0]), 2).tolist() == [[0, 1], [0, 1]]


def test_precision_of_a_class_never_predicted_is_zero_not_nan(no_warnings):
    # class 1 is true once and never predicted: precision 0/0 -> 0 (scikit-learn's zero_division=0)
    prec, rec, f1 = per_class([0, 1], [0, 0], 2)
    assert prec.tolist() == [0.5, 0.0] and rec.tolist() == [1.0, 0.0] and f1.tolist() == pytest.approx([2 / 3, 0])


def test_f1_when_precision_plus_recall_is_at_most_one():
    # class 0: tp 1, predicted 2, true 2 -> precision = recall = 0.5, F1 0.5 (the sum is exactly 1)
    prec, rec, f1 = per_class([0, 0, 1, 1], [0, 1, 0, 1], 2)
    assert prec.tolist() == [0.5, 0.5] and rec.tolist() == [0.5, 0.5] and f1.tolist() == [0.5, 0.5]
    # precision 1/3, recall 1/2: F1 = 2 * (1/6) / (5/6) = 0.4
    assert per_class([0, 0, 1, 1, 1], [0, 1, 0, 0, 1], 2)[2][0] == pytest.approx(0.4)


def test_empty_and_single_class_inputs_are_nan_without_warnings(no_warnings):
    assert np.isnan(accuracy([], []))
    assert np.isnan(macro_f1(np.array([], int), np.array([], int), 3))
    assert np.isnan(binary_auc([1, 1], [0.2, 0.3])) and np.isnan(binary_auc([0, 0], [0.2, 0.3]))
    assert np.isnan(ece([], np.zeros((0, 3))))
    # one true class of three (a one-image set, a --limit sample): every per-class AUC is undefined
    y = np.array([1, 1])
    auc, per = ovr_auc(y, np.array([[0.2, 0.5, 0.3], [0.1, 0.8, 0.1]]))
    assert np.isnan(auc) and len(per) == 3 and all(np.isnan(a) for a in per)


def test_ece_default_is_fifteen_equal_bins_on_0_1():
    # conf 0.61 (right) and 0.66 (wrong) share the 15-bin (0.6, 0.667]: |0.5 - 0.635| = 0.135.
    # 16 bins, 49 bins (linspace's default 50 edges) or bins twice as wide on (0, 2] put them apart or
    # join 0.55 to them; each gives another value.
    probs = np.array([[0.61, 0.39], [0.34, 0.66], [0.55, 0.45], [0.10, 0.90]])
    y = np.array([0, 0, 0, 1])
    # bins: (0.6, 0.667]: 2 of 4, acc 0.5, conf 0.635; (0.533, 0.6]: 1 of 4, acc 1, conf 0.55;
    # (0.867, 0.933]: 1 of 4, acc 1, conf 0.9
    want = 0.5 * abs(0.5 - 0.635) + 0.25 * abs(1 - 0.55) + 0.25 * abs(1 - 0.9)
    assert ece(y, probs) == pytest.approx(want)
    assert ece(y, probs, bins=15) == pytest.approx(want)
    assert ece(y, probs, bins=16) != pytest.approx(want)


def test_dice_iou_ignores_empty_images_without_warnings(no_warnings):
    z = np.zeros((1, 4, 4))
    for grid in (1, 2):
        d, i = dice_iou(z, z, grid=grid)
        assert d.tolist() == [1.0] and i.tolist() == [1.0]
    d, i = dice_iou(z, -np.ones((1, 4, 4)))  # nothing known: both empty
    assert d.tolist() == [1.0] and i.tolist() == [1.0]


def test_grid_dice_reads_a_non_binary_target_as_binary():
    # a 0/255 target scores at the grid as the 0/1 target it stands for: the pixel path reads > 0.5 as
    # foreground, the grid path clips each pixel to [0, 1] before the block mean (a half-filled block is
    # background, as it is for the 0/1 target)
    t01 = np.zeros((1, 4, 4))
    t01[0, :2, :2] = 1.0  # block (0, 0) full
    t01[0, 2, 2:] = 1.0  # block (1, 1) half: background at the grid
    pred = t01.copy()
    d01, i01 = dice_iou(pred, t01, grid=2)
    d255, i255 = dice_iou(pred, t01 * 255, grid=2)
    assert d01.tolist() == d255.tolist() and i01.tolist() == i255.tolist()
    assert d01.tolist() == [1.0]  # both: block (0, 0) only
    assert dice_iou(pred, t01 * 255)[0].tolist() == dice_iou(pred, t01)[0].tolist() == [1.0]


def test_label_grid_reads_a_half_mask_value_as_background_like_dice():
    # 0.5 is background for dice_iou (target > 0.5); label_grid thresholds the same way
    k = 4
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, size=(8, 32 // k, 32 // k)).astype(float).repeat(k, 1).repeat(k, 2)
    masks[:, :k, :k], masks[:, :k, k : 2 * k] = 0.0, 1.0  # every mask informative: block (0, 0) background
    assert label_grid(masks) == k
    soft = masks.copy()
    soft[:, 1, 1] = 0.5  # inside the background block: still background, the grid stands
    assert label_grid(soft) == k
    soft[:, 1, 1] = 0.51  # foreground: that block is no longer constant at any grid
    assert label_grid(soft) == 1
