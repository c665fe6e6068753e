"""`edge-wbc count --report`: the page's figures equal the JSON, it is self-contained, it stays bounded,
an unwritable path is one error with the JSON/CSV still written; and (where Chromium is installed) the
page renders in headless Chromium with no console error (scripts/report_check.sh)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edge_wbc import __version__
from edge_wbc.cli import app
from edge_wbc.defaults import REPORT_FULL_FIELDS, REPORT_MAX_FIELDS, REPORT_THUMB_PX
from edge_wbc.errors import DataError
from edge_wbc.tasks.report import FieldImages, render_html, sha256_file

REPO = Path(__file__).resolve().parents[2]


class Figures(HTMLParser):
    def __init__(self):
        super().__init__()
        self.vals, self.cur, self.cells, self.imgs, self.sha = {}, None, [], [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "section":
            self.cells.append(int(a["data-cells"]))
        for k in ("data-k", "data-total", "data-percent", "data-sha256", "data-um"):
            if k in a:
                self.cur = f"{k}:{a[k]}"

    def handle_data(self, d):
        if self.cur:
            self.vals[self.cur] = d.strip()
            self.cur = None


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    t = tmp_path_factory.mktemp("report")
    r = CliRunner().invoke(app, ["count", "--json", str(t / "c.json"), "--csv", str(t / "c.csv"),
                                 "--report", str(t / "r.html")])
    assert r.exit_code == 0, r.output
    return t, json.loads((t / "c.json").read_text()), (t / "r.html").read_text(), r.output


def test_page_figures_equal_the_json(counted):
    _, rep, page, out = counted
    assert "SAMPLE DATA: count runs on the embedded sample" in out and "n=4" in out
    g = Figures()
    g.feed(page)
    tot = rep["totals"]
    assert g.vals["data-k:fields"] == "4" == str(len(rep["images"]))
    assert g.vals["data-k:cells"] == str(sum(tot.values())) and sum(tot.values()) >= 4
    assert g.vals["data-k:uncertain"] == str(tot["uncertain"])
    assert {k: int(g.vals[f"data-total:{k}"]) for k in tot} == tot
    assert {k: g.vals[f"data-percent:{k}"] for k in tot} == {k: f"{v:.1f}" for k, v in rep["percent"].items()}
    assert g.cells == [len(r["cells"]) for r in rep["images"]]
    assert g.vals["data-k:version"] == __version__
    from edge_wbc.assets import DEFAULT_DETECTOR, assets_dir

    assert g.vals["data-sha256:classifier"] == f"sha256 {sha256_file(assets_dir() / 'wbc_field_int8.tflite')}"
    assert g.vals["data-sha256:detector"] == f"sha256 {sha256_file(assets_dir() / DEFAULT_DETECTOR)}"
    assert g.vals["data-um:0"] == str(rep["images"][0]["um_per_px"])  # each field's red-cell estimate (issue 16)
    assert "embedded sample: BCCD test smears" in page and "Shenggan" in page  # the input and its credit
    assert "<svg" in page and page.count("<rect") == len(tot)  # one bar per class + uncertain


def test_page_is_self_contained(counted):
    _, rep, page, _ = counted
    g = Figures()
    g.feed(page)
    assert len(g.imgs) == 4 and all(s.startswith("data:image/jpeg;base64,") for s in g.imgs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page


def test_um_per_px_and_flags_are_shown_when_the_json_has_them():
    rep = {"images": [{"file": "a.png", "width": 10, "height": 10, "um_per_px": 0.1234, "counts": {"x": 1},
                       "cells": [{"box": [0, 0, 5, 5], "label": "uncertain", "confidence": 0.41, "class": "x",
                                  "flags": ["edge"]}]}],
           "totals": {"x": 0, "uncertain": 1}, "percent": {"x": 0.0, "uncertain": 100.0}, "um_per_px": 0.1234}
    page = render_html(rep, FieldImages(), ["x"], {}, "9.9")
    assert 'data-um="0">0.1234<' in page and 'data-k="um_per_px">0.1234<' in page
    assert "uncertain (top: x), edge" in page


def test_a_detector_without_a_model_file_is_named_not_hashed(tmp_path):
    m = tmp_path / "clf.tflite"
    m.write_bytes(b"model")
    rep = {"images": [], "totals": {"uncertain": 0}, "percent": {"uncertain": 0.0}}
    page = render_html(rep, FieldImages(), [], {"detector": "nuclei (rule-based, no model)", "classifier": str(m)},
                       "0")
    assert '<td data-model="detector">nuclei (rule-based, no model)</td>' in page
    assert f'data-sha256="classifier">sha256 {sha256_file(m)}<' in page and 'data-sha256="detector"' not in page


def test_over_the_field_limit_is_refused_with_the_limit_named():
    rep = {"images": [{"file": f"{i}.png", "cells": [], "counts": {}} for i in range(REPORT_MAX_FIELDS + 1)],
           "totals": {"uncertain": 0}, "percent": {"uncertain": 0.0}}
    with pytest.raises(DataError, match=rf"{REPORT_MAX_FIELDS + 1} fields is over the report's limit of "
                                        rf"{REPORT_MAX_FIELDS} fields"):
        render_html(rep, FieldImages(), [], {}, "0")


def test_many_fields_become_thumbnails_and_memory_stays_bounded():
    fi = FieldImages()
    img = Image.new("RGB", (640, 480), (200, 100, 50))
    for _ in range(REPORT_FULL_FIELDS):
        fi.add(img)
    assert not fi.thumbs and Image.open(io.BytesIO(fi.images[0])).size == (640, 480)
    fi.add(img)
    assert fi.thumbs
    sizes = {Image.open(io.BytesIO(b)).size for b in fi.images}
    assert sizes == {(REPORT_THUMB_PX, REPORT_THUMB_PX * 3 // 4)}
    fi.images += [b"x"] * (REPORT_MAX_FIELDS - len(fi.images))
    fi.add(img)
    assert fi.images[-1] is None  # past the limit nothing is kept


def test_unwritable_report_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "r.html"  # parent is a file: cannot be created, even as root
    r = CliRunner().invoke(app, ["count", "--json", str(tmp_path / "c.json"), "--csv", str(tmp_path / "c.csv"),
                                 "--report", str(bad)])
    assert r.exit_code == 2
    err = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and f"--report {bad}" in err[0] and "is a file, not a directory" in err[0]
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "c.csv").exists()  # checked before any work


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium not installed (apt-get install -y chromium); scripts/report_check.sh needs it")
def test_report_renders_in_headless_chromium(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(REPO / "scripts" / "report_check.sh"), "--screenshot", str(tmp_path / "s.png")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "report_check: 4 fields" in r.stdout and "FAIL" not in r.stdout
    assert Image.open(tmp_path / "s.png").size == (420, 900)
