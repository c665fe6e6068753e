"""The field sources of the multi-source WBC detector: names, splits, boxes (real data, no model)."""

from __future__ import annotations

import pytest

from edge_wbc.data.fields import (
    SHIPPABLE_SOURCES,
    field_list,
    fields_license,
    is_fields_dataset,
    parse_fields_dataset,
    yolo_boxes,
)
from edge_wbc.errors import DataError


def test_names_parse_and_bad_names_list_the_valid_sources():
    assert parse_fields_dataset("fields") == SHIPPABLE_SOURCES == ("bccd", "smartphone_pig")
    assert parse_fields_dataset("fields:sigtuple, bccd") == ("sigtuple", "bccd")
    assert is_fields_dataset("fields:bccd") and not is_fields_dataset("bccd_smear") and not is_fields_dataset(None)
    with pytest.raises(DataError, match=r"unknown field source 'pig' in 'fields:bccd,pig': valid choices are "
                                        r"bccd, sigtuple, smartphone_pig"):
        parse_fields_dataset("fields:bccd,pig")
    with pytest.raises(DataError, match="names a source twice"):
        parse_fields_dataset("fields:bccd,bccd")
    with pytest.raises(DataError, match="not a field dataset"):
        parse_fields_dataset("bccd")


def test_licences_follow_the_sources():
    assert fields_license("fields") == "bccd: MIT; smartphone_pig: CC0 1.0"
    assert "evaluation only" in fields_license("fields:sigtuple")


def test_yolo_boxes_in_pixels(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("0 0.5 0.25 0.1 0.2\n\n0 0.0 1.0 0.2 0.2\nbad line\n")
    assert yolo_boxes(f, 400, 200) == ((180, 30, 220, 70), (-40, 180, 40, 220))
    assert yolo_boxes(tmp_path / "missing.txt", 10, 10) == ()


def test_every_source_has_its_own_split_and_boxes(data_root):
    fields = field_list(data_root, ("bccd", "smartphone_pig", "sigtuple"))
    n = {}
    for f in fields:
        n[(f.source, f.split)] = n.get((f.source, f.split), 0) + 1
    assert n == {("bccd", "train"): 205, ("bccd", "val"): 87, ("bccd", "test"): 72,
                 ("smartphone_pig", "train"): 459, ("smartphone_pig", "val"): 98, ("smartphone_pig", "test"): 98,
                 ("sigtuple", "train"): 148, ("sigtuple", "val"): 16, ("sigtuple", "test"): 13}
    test = [f for f in fields if f.split == "test"]
    boxes = {s: sum(len(f.boxes) for f in test if f.source == s) for s in ("bccd", "smartphone_pig", "sigtuple")}
    assert boxes == {"bccd": 71, "smartphone_pig": 180, "sigtuple": 19}
    # a SigTuple training patch holds one WBC, its mask's largest component, near the centre
    patch = next(f for f in fields if f.source == "sigtuple" and f.split == "train")
    (x0, y0, x1, y1), = patch.boxes
    assert x0 < 64 < x1 and y0 < 64 < y1
    # the sources' test fields are disjoint from their train fields
    assert not {f.path for f in test} & {f.path for f in fields if f.split == "train"}
