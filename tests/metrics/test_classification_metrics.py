"""Classification metrics against hand-computed values and scikit-learn's (no model, no data: fast)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

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
from edge_wbc.runtime.probs import class_probs, keras_probs

# 3 classes, 10 samples. Confusion (rows true, cols pred):
#   [[2, 1, 0],
#    [1, 3, 0],
#    [0, 2, 1]]
Y = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
P = np.array([0, 0, 1, 0, 1, 1, 1, 1, 1, 2])


def test_confusion_rows_are_true_columns_predicted():
    assert confusion(Y, P, 3).tolist() == [[2, 1, 0], [1, 3, 0], [0, 2, 1]]
    assert confusion([2], [0], 3).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]


def test_accuracy_by_hand():
    assert accuracy(Y, P) == pytest.approx(6 / 10)
    assert accuracy([1, 1], [1, 1]) == 1.0
    assert accuracy([1, 0], [0, 1]) == 0.0
    assert np.isnan(accuracy([], []))


def test_precision_recall_f1_by_hand_and_sklearn():
    prec, rec, f1 = per_class(Y, P, 3)
    # precision = tp / predicted: class 0: 2/3, class 1: 3/6, class 2: 1/1
    assert prec.tolist() == pytest.approx([2 / 3, 3 / 6, 1.0])
    # recall = tp / true: 2/3, 3/4, 1/3
    assert rec.tolist() == pytest.approx([2 / 3, 3 / 4, 1 / 3])
    assert f1.tolist() == pytest.approx([2 / 3, 2 * 0.5 * 0.75 / 1.25, 2 * (1 / 3) / (4 / 3)])
    sp, sr, sf, _ = skm.precision_recall_fscore_support(Y, P, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(prec, sp)
    np.testing.assert_allclose(rec, sr)
    np.testing.assert_allclose(f1, sf)


def test_undefined_precision_recall_are_zero():
    # class 2 never true and never predicted; class 1 predicted but never true
    prec, rec, f1 = per_class([0, 0], [0, 1], 3)
    assert prec.tolist() == [1.0, 0.0, 0.0]
    assert rec.tolist() == [0.5, 0.0, 0.0]
    assert f1.tolist() == pytest.approx([2 / 3, 0.0, 0.0])


def test_macro_f1_is_mean_f1_of_present_classes():
    f1 = per_class(Y, P, 3)[2]
    assert macro_f1(Y, P, 3) == pytest.approx(f1.mean())
    assert macro_f1(Y, P, 3) == pytest.approx(skm.f1_score(Y, P, average="macro"))
    # macro-recall differs here: a macro-F1 that averaged recall would give 0.5833
    assert macro_f1(Y, P, 3) != pytest.approx(per_class(Y, P, 3)[1].mean())
    # classes absent from both y_true and y_pred do not count (k = 5, only 0..2 present)
    assert macro_f1(Y, P, 5) == pytest.approx(f1.mean())
    assert np.isnan(macro_f1([], [], 3))


def test_binary_auc_by_hand_with_ties():
    # positives 0.8, 0.4, 0.4; negatives 0.4, 0.1. Pairs (pos > neg):
    # 0.8 beats both (2), each 0.4 ties 0.4 (0.5) and beats 0.1 (1): 2 + 1.5 + 1.5 = 5 of 6
    y = np.array([1, 0, 1, 1, 0])
    s = np.array([0.8, 0.4, 0.4, 0.4, 0.1])
    assert binary_auc(y, s) == pytest.approx(5 / 6)
    assert binary_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert binary_auc([0, 1], [0.2, 0.9]) == 1.0
    assert binary_auc([1, 0], [0.2, 0.9]) == 0.0
    assert binary_auc([0, 1], [0.5, 0.5]) == 0.5
    assert np.isnan(binary_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(binary_auc([0, 0], [0.2, 0.3]))


def test_binary_auc_matches_sklearn_on_random_scores_with_many_ties(rng):
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        s = rng.integers(0, 5, n) / 4.0  # heavy ties
        assert binary_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))


def test_ovr_auc_macro_and_per_class(rng):
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    p = rng.dirichlet(np.ones(3), size=len(y))
    auc, per = ovr_auc(y, p)
    assert per == pytest.approx([skm.roc_auc_score(y == c, p[:, c]) for c in range(3)])
    assert auc == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    # an absent class is NaN per class and left out of the macro mean
    auc4, per4 = ovr_auc(y, np.column_stack([p, np.zeros(len(y))]))
    assert np.isnan(per4[3]) and auc4 == pytest.approx(np.mean(per))


def test_ovr_auc_binary_is_the_positive_class_auc():
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.7, 0.9])
    auc, per = ovr_auc(y, np.column_stack([1 - p1, p1]))
    assert auc == pytest.approx(skm.roc_auc_score(y, p1)) == pytest.approx(5 / 6)
    assert per[0] == pytest.approx(5 / 6)  # the negative class scored by 1 - p: same ranking


def test_ece_by_hand():
    # two bins used (of 15 equal-width): conf 0.9 (correct), 0.9 (wrong), 0.6 (correct), 0.6 (correct)
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0, 1])
    # bin 0.9: acc 0.5, conf 0.9 -> |0.5 - 0.9| * 2/4 = 0.2 ; bin 0.6: acc 1.0, conf 0.6 -> 0.4 * 2/4 = 0.2
    assert ece(y, probs) == pytest.approx(0.4)
    # overconfident and underconfident gaps add up (an ECE without abs() would give 0 here)
    probs2 = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    y2 = np.array([0, 1, 0, 0])  # bin 0.95: acc 0.5 (gap -0.45); bin 0.55: acc 1 (gap +0.45)
    assert ece(y2, probs2) == pytest.approx(0.45)
    assert ece([0, 1], np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0
    assert np.isnan(ece([], np.zeros((0, 2))))


def test_ece_bins_are_right_closed():
    # conf exactly 0.5 belongs to (0.4667, 0.5]; with 2 bins to (0, 0.5]; 1.0 belongs to the last bin
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    y = np.array([0, 0])
    assert ece(y, probs, bins=2) == pytest.approx(0.5 * 0.5)
    assert ece(y, probs, bins=1) == pytest.approx(abs(1.0 - 0.75))


def test_sigmoid_class_order_is_negative_then_positive():
    p = class_probs(np.array([[0.9], [0.2]]), 2)
    np.testing.assert_allclose(p, [[0.1, 0.9], [0.8, 0.2]], rtol=1e-6)
    assert p.argmax(1).tolist() == [1, 0] and p.dtype == np.float32
    # softmax outputs and multi-class pass through unchanged
    q = np.array([[0.3, 0.7]], np.float32)
    np.testing.assert_array_equal(class_probs(q, 2), q)
    np.testing.assert_allclose(class_probs(np.array([[[0.2, 0.3, 0.5]]]), 3), [[0.2, 0.3, 0.5]], rtol=1e-6)


def test_keras_probs_feeds_float_pixels_and_applies_the_class_order():
    seen = {}

    class FakeModel:
        def predict(self, x, batch_size, verbose):
            seen.update(dtype=x.dtype, batch=batch_size, verbose=verbose)
            return x.reshape(len(x), -1)[:, :1] / 255.0

    class Spec:
        num_classes = 2

    imgs = np.array([[[[51]]], [[[204]]]], np.uint8)
    p = keras_probs(FakeModel(), imgs, Spec(), batch=7)
    np.testing.assert_allclose(p, [[0.8, 0.2], [0.2, 0.8]], rtol=1e-6)
    assert seen == {"dtype": np.float32, "batch": 7, "verbose": 0}


def test_classification_report_values():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    y = np.array([0, 1, 2, 1])
    rep = classification_report(y, probs, ("a", "b", "c"))
    assert rep["n"] == 4 and rep["accuracy"] == 0.75
    assert rep["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert rep["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                     "auc": pytest.approx(skm.roc_auc_score(y == 0, probs[:, 0])), "support": 1}
    assert rep["per_class"]["b"]["recall"] == 0.5 and rep["per_class"]["b"]["precision"] == 1.0
    assert rep["per_class"]["c"]["support"] == 1
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(y, probs.argmax(1), average="macro"))
    assert rep["auc_ovr"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
    assert rep["ece"] == pytest.approx(ece(y, probs))
