"""What a first-time user of classify / count / segment meets on odd inputs (shipped models, real images)."""

from __future__ import annotations

import csv
import json
import shutil

from PIL import Image
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.fileio import OutputStems

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _bad_files(tmp_path, data_root):
    d = tmp_path / "bad"
    d.mkdir()
    jpg = (data_root / "bccd/BCCD/JPEGImages/BloodImage_00001.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (d / "fake.jpg").write_text("not an image")
    return d


def test_count_table_marks_unreadable_files_as_errors_not_empty_fields(tmp_path, data_root):
    d = _bad_files(tmp_path, data_root)
    r = run("count", d, "--csv", tmp_path / "c.csv")
    assert r.exit_code == 1, r.output
    rows = [ln for ln in r.output.splitlines() if "truncated.jpg" in ln or "fake.jpg" in ln]
    table = [ln for ln in rows if "│" in ln]
    assert len(table) == 2 and all("│ error" in ln and "│ 0 " not in ln for ln in table), table
    assert "2 file(s) could not be counted:" in r.output
    assert "fake.jpg: not a recognised image file" in r.output and "truncated.jpg: cannot decode image" in r.output
    with open(tmp_path / "c.csv", newline="") as fh:
        body = list(csv.reader(fh))[1:]
    assert [row[:-1] for row in body] == [[str(d / "fake.jpg")] + [""] * 9, [str(d / "truncated.jpg")] + [""] * 9]
    assert body[0][-1].endswith("not a recognised image file (supported: JPEG, PNG, BMP, TIFF, GIF, WEBP)")


def test_output_stems_never_repeat():
    s = OutputStems()
    assert [s("a/001.bmp"), s("a/001.png"), s("b/001.bmp"), s("c/001.BMP"), s("x/lympho.tif")] == [
        "001", "001.png", "001.bmp", "001.BMP-2", "lympho"]
    assert s.renamed == [("a/001.png", "001.png"), ("b/001.bmp", "001.bmp"), ("c/001.BMP", "001.BMP-2")]
    note = s.note(".mask.png")
    assert "3 input(s) share a file name" in note and "a/001.png -> 001.png.mask.png" in note
    s.release("001.BMP-2")
    assert s("d/001.bmp") == "001.bmp-2" and OutputStems().note("") is None


def test_segment_and_count_keep_every_output_when_inputs_share_a_name(tmp_path, data_root):
    # wbc_seg/dataset1 holds 001.bmp (the cell) beside 001.png (its mask): one stem, two inputs
    src = data_root / "wbc_seg/dataset1"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(src / "001.bmp", a / "001.bmp")
    shutil.copy(src / "001.png", a / "001.png")
    shutil.copy(src / "002.bmp", b / "001.bmp")
    r = run("segment", a, b, "--out", tmp_path / "seg")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "seg").iterdir())
    assert len(names) == 9 and {"001.mask.png", "001.png.mask.png", "001.bmp.overlay.png"} <= set(names), names
    assert "2 input(s) share a file name with an earlier input" in r.output
    # each overlay is its own input's (the cell, its grey mask, another cell), none written over
    ov = [Image.open(tmp_path / "seg" / f"{s}.overlay.png").convert("RGB") for s in ("001", "001.png", "001.bmp")]
    assert len({im.tobytes() for im in ov}) == 3
    assert Image.open(tmp_path / "seg/001.bmp.overlay.png").size == Image.open(src / "002.bmp").size
    r = run("count", a / "001.bmp", b / "001.bmp", "--out", tmp_path / "ann", "--json", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["001.bmp.count.jpg", "001.count.jpg"]
    assert len(json.loads((tmp_path / "c.json").read_text())["images"]) == 2
    rows = [ln for ln in r.output.splitlines() if "001.bmp" in ln and "│" in ln]  # the table names both paths
    assert len(rows) == 2 and str(a / "001.bmp") in rows[0] and str(b / "001.bmp") in rows[1], rows


def test_a_rerun_with_out_inside_the_inputs_does_not_read_its_own_outputs(tmp_path, data_root):
    d = tmp_path / "cells"
    d.mkdir()
    shutil.copy(data_root / "wbc_seg/dataset1/001.bmp", d / "001.bmp")
    for _ in range(2):
        r = run("count", d, "--out", d / "ann", "--json", tmp_path / "c.json")
        assert r.exit_code == 0, r.output
    assert [i["file"] for i in json.loads((tmp_path / "c.json").read_text())["images"]] == [str(d / "001.bmp")]
    assert sorted(p.name for p in (d / "ann").iterdir()) == ["001.count.jpg"]
    s = tmp_path / "seg_in"  # (count's ann/ folder would be an input of segment)
    s.mkdir()
    shutil.copy(d / "001.bmp", s / "001.bmp")
    for _ in range(2):
        r = run("segment", s, "--out", s / "seg")
        assert r.exit_code == 0 and "segmented 1 image(s)" in r.output, r.output
    assert sorted(p.name for p in (s / "seg").iterdir()) == ["001.mask.png", "001.nucleus.png", "001.overlay.png"]
    r = run("count", d / "ann", "--out", d / "ann", "--json", tmp_path / "c.json")  # named as the input: read
    assert r.exit_code == 0 and len(json.loads((tmp_path / "c.json").read_text())["images"]) == 1, r.output


def test_a_field_whose_red_cells_give_an_out_of_range_scale_is_not_called_few_red_cells(data_root):
    from edge_wbc.tasks.scale import field_scale

    smear = Image.open(data_root / "bccd/BCCD/JPEGImages/BloodImage_00001.jpg").convert("RGB")
    big = smear.resize((2560, 1920), Image.Resampling.BILINEAR)  # red cells ~420 px: 0.018 µm/px
    fs = field_scale(big, 0.5)
    assert fs.flags == ["scale_out_of_range"] and fs.source == "fallback" and fs.um_per_px == 0.5
    assert fs.red_cells > 10 and "too few" not in fs.note
    assert "outside 0.02-5.0" in fs.note and "µm per pixel" in fs.note and "--um-per-px" in fs.note
    assert field_scale(smear, 0.5).flags == []  # the same field at its own size is estimated


def test_classify_summary_is_one_line_in_a_pipe(data_root):
    f = sorted((data_root / "pbc128/test/lymphocyte").glob("*.jpg"))[0]
    r = run("classify", f)
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("classified 1 image(s)"))
    assert line.endswith(")") and "uncertain below" in line, r.output


def test_help_paragraphs_are_not_broken_at_the_docstring_wrap():
    r = runner.invoke(app, ["classify", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    # the docstring breaks after "exposure," and "uncertain": the help shows each sentence whole
    assert "too_small, grayscale, exposure, blur, noise, no_wbc" in r.output
    assert "below the model's uncertain threshold (its one rule" in r.output
    assert "Files are streamed one at a time" in text
    r = runner.invoke(app, ["--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert "int8 bundle; or, with --method features" in r.output


def test_classify_json_entries_have_one_set_of_keys(tmp_path, data_root):
    d = _bad_files(tmp_path, data_root)
    shutil.copy(sorted((data_root / "pbc128/test/neutrophil").glob("*.jpg"))[0], d / "cell.jpg")
    r = run("classify", d, "--json", tmp_path / "c.json", "--csv", tmp_path / "c.csv")
    assert r.exit_code == 1, r.output
    entries = json.loads((tmp_path / "c.json").read_text())["images"]
    assert [e["file"].rsplit("/", 1)[-1] for e in entries] == ["cell.jpg", "fake.jpg", "truncated.jpg"]
    assert len({tuple(e) for e in entries}) == 1, [sorted(e) for e in entries]  # a reader can index any entry
    assert entries[1]["ood_score"] is None
    assert entries[1]["error"].endswith("not a recognised image file (supported: JPEG, PNG, BMP, TIFF, GIF, WEBP)")
    assert entries[0]["error"] is None and entries[0]["ood_score"] > 0


def test_count_help_shows_model_not_the_old_classifier_spelling(tmp_path, data_root):
    r = runner.invoke(app, ["count", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert r.exit_code == 0 and "--model" in r.output and "--classif" not in r.output
    cell = data_root / "wbc_seg/dataset1/001.bmp"
    r = run("count", cell, "--classifier", "wbc_field_int8", "--json", tmp_path / "c.json")  # still works
    assert r.exit_code == 0 and "--classifier is deprecated, use --model" in r.output, r.output
    assert json.loads((tmp_path / "c.json").read_text())["models"]["classifier"].endswith("wbc_field_int8.tflite")
    r = run("count", cell, "--classifier", "wbc_field_int8", "-m", "bccd4_int8")
    assert r.exit_code == 2 and "--model bccd4_int8 and --classifier wbc_field_int8: give one" in r.output
