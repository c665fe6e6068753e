"""The rule-based nucleus detector: synthetic fields, its rule's errors, and real BCCD smears through count."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from edge_wbc.data.fields import field_list
from edge_wbc.runtime.nuclei import NUCLEI_DETECTOR, NucleusRule, covered, detect_nuclei, nucleus_masks


def _field(wbc_d: int = 18, platelet_d: int = 4, gray: bool = False) -> Image.Image:
    """A pale field of pink red cells (15 px) with one purple nucleus and one small purple platelet."""
    im = Image.new("RGB", (160, 120), (235, 225, 230))
    d = ImageDraw.Draw(im)
    for y in range(8, 120, 17):
        for x in range(8, 160, 17):
            d.ellipse([x - 7, y - 7, x + 7, y + 7], fill=(215, 140, 150))  # green and blue alike: not a nucleus
    d.ellipse([60, 40, 60 + wbc_d, 40 + wbc_d], fill=(110, 60, 160))  # blue far above green
    d.ellipse([120, 90, 120 + platelet_d, 90 + platelet_d], fill=(110, 60, 160))
    return im.convert("L").convert("RGB") if gray else im


def test_one_box_on_the_nucleus_and_none_on_red_cells_or_a_platelet():
    found = detect_nuclei(np.asarray(_field()))
    assert len(found) == 1
    (x0, y0, x1, y1), core = found[0]
    # the nucleus spans 60-78 (PIL's ellipse bounds are inclusive); the join filter (5 px) widens its
    # component by 2 px a side, and the box is the square around that
    assert (x0, y0, x1, y1) == (58, 38, 81, 61)
    assert 0.5 < core <= 1.0


def test_grow_and_min_area_follow_the_rule():
    a = np.asarray(_field())
    (box,), = [[b for b, _ in detect_nuclei(a, NucleusRule(grow=1.5))]]
    assert box[2] - box[0] == pytest.approx(1.5 * 23)
    assert detect_nuclei(a, NucleusRule(min_area_px=400)) == []  # the 18 px nucleus has about 250 px
    assert len(detect_nuclei(a, NucleusRule(min_area_px=5))) == 2  # ... and now the platelet counts too


def test_no_stain_no_nuclei():
    assert detect_nuclei(np.asarray(_field(gray=True))) == []
    assert detect_nuclei(np.zeros((50, 50, 3), np.uint8)) == []  # all void (an eyepiece's black surround)
    core, joined = nucleus_masks(np.zeros((50, 50, 3), np.uint8))
    assert not core.any() and not joined.any()


def test_bad_input_and_rule_errors_name_the_choices():
    with pytest.raises(ValueError, match=r"wants an \(H, W, 3\) RGB array, got shape \(10, 10\)"):
        detect_nuclei(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"unknown keys \['sigma'\]; valid keys are \['floor', 'grow'"):
        NucleusRule.from_dict({"sigma": 2})
    assert NucleusRule.from_dict(None) == NucleusRule()
    assert NucleusRule.from_dict(NucleusRule(k=2.0).to_dict()).k == 2.0


def test_covered_by_centre_or_iou():
    assert covered([10, 10, 20, 20], [[0, 0, 30, 30]])  # centre inside
    assert covered([0, 0, 10, 10], [[2, 2, 14, 14]])  # centre (5, 5) inside too
    assert not covered([0, 0, 10, 10], [[8, 8, 30, 30]])  # a corner touch: IoU 4 / 580
    assert not covered([0, 0, 10, 10], [])


def test_real_bccd_smears_through_count(data_root):
    """Count with the rule detector alone on 6 BCCD test smears: every WBC box is found at IoU >= 0.5."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from count_eval import match

    from edge_wbc.assets import default_classifier
    from edge_wbc.tasks.count import SmearCounter

    fields = [f for f in field_list(data_root, ("bccd",), "test") if f.boxes][:6]
    sc = SmearCounter(NUCLEI_DETECTOR, default_classifier())
    assert sc.det is None and "stained nuclei (rule-based, no model)" in sc.settings()["detection"]
    tp = n_gt = n_pred = 0
    for f in fields:
        r = sc.count_image(f.path)
        assert r["scale_source"] == "estimated"
        pred = [c["box"] for c in r["cells"]]
        assert {c["found_by"] for c in r["cells"]} <= {"nuclei"}
        tp, n_gt, n_pred = tp + match([list(b) for b in f.boxes], pred), n_gt + len(f.boxes), n_pred + len(pred)
    assert n_gt >= 6 and tp == n_gt and n_pred <= n_gt + 1
    with pytest.raises(ValueError, match="canonical scale only"):
        SmearCounter(NUCLEI_DETECTOR, default_classifier(), tile=True)
