"""stratified_split: fractions per class, groups kept whole, deterministic (fast, no data)."""

from __future__ import annotations

import numpy as np

from edge_wbc.data.loaders import stratified_split


def test_fractions_per_class():
    y = np.repeat([0, 1], [100, 50])
    parts = stratified_split(y, (0.7, 0.1, 0.2), seed=3)
    got = {s: np.bincount(y[i], minlength=2).tolist() for s, i in parts.items()}
    assert got == {"train": [70, 35], "val": [10, 5], "test": [20, 10]}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(150))
    # the default is 70 / 10 / 20
    assert {s: len(i) for s, i in stratified_split(y, seed=3).items()} == {"train": 105, "val": 15, "test": 30}
    # val 0.3, test 0.1 is the other way round
    other = stratified_split(y, (0.6, 0.3, 0.1), seed=3)
    assert {s: len(i) for s, i in other.items()} == {"train": 90, "val": 45, "test": 15}


def test_deterministic_by_seed_and_sorted():
    y = np.repeat([0, 1, 2], 30)
    a, b = stratified_split(y, seed=1), stratified_split(y, seed=1)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["test"], stratified_split(y, seed=2)["test"])
    assert all(np.array_equal(v, np.sort(v)) for v in a.values())


def test_small_classes_stay_in_train_and_at_least_one_in_val_and_test():
    y = np.array([0, 0, 1, 1, 1])
    parts = stratified_split(y, (0.7, 0.1, 0.2))
    assert parts["train"].tolist()[:2] == [0, 1]  # class 0 (n = 2 < 3): train only
    assert len(parts["val"]) == 1 and len(parts["test"]) == 1  # class 1 (n = 3): one each


def test_groups_move_together():
    y = np.array([0] * 40)
    groups = [f"g{i // 4}" for i in range(40)]  # 10 groups of 4
    parts = stratified_split(y, (0.6, 0.2, 0.2), seed=0, groups=groups)
    assert {s: len(i) for s, i in parts.items()} == {"train": 24, "val": 8, "test": 8}
    for s, idx in parts.items():
        gs = {groups[i] for i in idx}
        assert all(groups[j] not in gs for t, other in parts.items() if t != s for j in other)
    # a group's label is its majority label: three [1, 1, 0] groups are class 1, three [0, 0, 0] class 0,
    # so each split gets one group of each (3 groups a class: 1 test, 1 val, 1 train)
    y2 = np.array([1, 1, 0] * 3 + [0, 0, 0] * 3)
    g2 = [f"g{i // 3}" for i in range(18)]
    p2 = stratified_split(y2, (0.34, 0.33, 0.33), groups=g2)
    for s, idx in p2.items():
        assert len(idx) == 6, s
        assert len({g2[i] for i in idx if g2[i] in ("g0", "g1", "g2")}) == 1, s


def test_default_seed_is_zero_and_indices_are_int64():
    y = np.repeat([0, 1, 2], 20)
    a, b = stratified_split(y), stratified_split(y, seed=0)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    parts = stratified_split(np.array([0, 0, 1, 1]))  # both classes too small: val and test are empty
    assert parts["val"].dtype == np.int64 and len(parts["val"]) == 0 and parts["test"].dtype == np.int64
