"""U-Net segmentation, smear counting: data, metrics, components, CLI outputs (tiny models)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.data.segdata import load_seg_dataset, voc_boxes
from edge_wbc.metrics.segmentation import dice_iou, label_grid
from edge_wbc.preprocess import load_image
from edge_wbc.runtime import TFLiteSegmenter
from edge_wbc.spec import ModelSpec
from edge_wbc.tasks.segment import boxes_from_map, drop_small, label_components, segment_maps

runner = CliRunner()


def test_dice_iou_values_and_unknown_pixels():
    t = np.zeros((1, 4, 4))
    t[0, :2, :2] = 1
    p = np.zeros((1, 4, 4))
    p[0, :2, :] = 1
    d, i = dice_iou(p, t)
    assert d[0] == pytest.approx(2 * 4 / (8 + 4)) and i[0] == pytest.approx(4 / 8)
    t[0, :2, 2:] = -1  # unknown pixels are ignored: the prediction there does not count
    d, _ = dice_iou(p, t)
    assert d[0] == pytest.approx(1.0)
    assert dice_iou(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)))[0][0] == 1.0


def test_label_grid_finds_the_annotation_block_size(rng):
    coarse = rng.random((8, 8, 10)) > 0.5  # labels drawn at 8 x 10, stored at 32 x 40
    coarse[:, 0, 0], coarse[:, 0, 1] = True, False  # none empty or full
    blocks = np.kron(coarse, np.ones((4, 4))).astype(float)
    assert label_grid(blocks) == 4
    assert label_grid(np.kron(coarse, np.ones((2, 2)))) == 2
    noisy = blocks.copy()
    noisy[1, 5, 6] = 1 - noisy[1, 5, 6]  # one pixel off the grid: pixel-level labels
    assert label_grid(noisy) == 1
    partly = np.concatenate([blocks, np.where(rng.random((1, 32, 40)) > 0.9, -1.0, noisy[1:2])])
    assert label_grid(partly) == 4  # a mask with unknown pixels says nothing
    assert label_grid(np.concatenate([blocks, np.zeros((3, 32, 40)), np.ones((3, 32, 40))])) == 4
    assert label_grid(blocks[:7]) == 1  # too few masks to tell a grid from chance
    square = np.zeros((8, 128, 128))
    square[:, :32, :32] = 1  # one aligned 32 px square: k is capped at 128 // 8
    assert label_grid(square) == 16
    with pytest.raises(ValueError, match=r"non-empty \(N, H, W\).*\(32, 40\)"):
        label_grid(blocks[0])


def test_dice_iou_at_the_label_grid():
    t = np.zeros((1, 8, 8))
    t[0, :4, :4] = 1  # one 4 x 4 label block
    p = np.zeros((1, 8, 8))
    p[0, 1:4, 0:4] = 0.9  # the block less one row: off at pixel level, the same block at the grid
    assert dice_iou(p, t)[0][0] == pytest.approx(2 * 12 / (12 + 16))
    d, i = dice_iou(p, t, grid=4)
    assert d[0] == 1.0 and i[0] == 1.0
    p[0, 4:8, 4:6] = 1.0  # half of another block: a block mean of exactly 0.5 is not > 0.5
    assert dice_iou(p, t, grid=4)[0][0] == 1.0
    p[0, 4:8, 4:7] = 1.0
    assert dice_iou(p, t, grid=4)[0][0] == pytest.approx(2 / 3)
    t[0, 4, 4] = -1  # one unknown pixel: the whole block is not scored
    assert dice_iou(p, t, grid=4)[0][0] == 1.0
    assert dice_iou(p, t)[0][0] < 1.0  # at pixel level the other 15 pixels of that block still count
    with pytest.raises(ValueError, match="grid 3 does not divide the 8x8 maps"):
        dice_iou(p, t, grid=3)


def test_sigtuple_masks_lie_on_a_4px_grid_and_wbcseg_masks_do_not(data_root):
    from edge_wbc.metrics.segmentation import label_grids, seg_report

    ds = load_seg_dataset("seg", ModelSpec("segmentation", 128, 128, ("wbc", "nucleus")), data=data_root)
    tr, te = ds.split("train"), ds.split("test")
    assert label_grids(tr, ds.labels) == {"wbc/sigtuple": 4}
    sig = np.array([g == "sigtuple" for g in te.groups])
    shifted = np.roll(np.clip(te.labels, 0, 1), 1, axis=2)  # every mask one pixel to the right
    rep = seg_report(shifted, te.labels, ds.labels, te.groups, grids={"wbc/sigtuple": 4})
    assert rep["wbc/sigtuple"]["grid"] == 4 and rep["wbc/sigtuple"]["n"] == sig.sum()
    assert rep["wbc/sigtuple"]["dice"] < rep["wbc/sigtuple"]["dice_grid"] == 1.0  # a 1 px shift stays inside its blocks
    assert "dice_grid" not in rep["wbc/wbcseg"] and rep["wbc/wbcseg"]["dice"] < 1.0


def test_label_components_matches_scipy(rng):
    from scipy import ndimage

    m = rng.random((40, 50)) > 0.55
    lab, n = label_components(m)
    ref, n_ref = ndimage.label(m)
    assert n == n_ref
    # same partition: each of our components maps to exactly one scipy component
    for k in range(1, n + 1):
        assert len(np.unique(ref[lab == k])) == 1


def test_label_components_numbers_in_raster_order_like_scipy(rng):
    """The run-based labels are scipy's partition, numbered by each component's first pixel in raster
    order, on masks of every density and shape (a single row or column, all True, all False)."""
    from scipy import ndimage

    masks = [rng.random(rng.integers(1, 40, 2)) > rng.uniform(0.1, 0.9) for _ in range(60)]
    masks += [np.ones((3, 7), bool), np.zeros((4, 4), bool), np.ones((1, 9), bool), rng.random((9, 1)) > 0.5]
    for m in masks:
        lab, n = label_components(m)
        ref, n_ref = ndimage.label(m)
        first = {}  # scipy label -> its rank by first pixel in raster order
        for v in ref.ravel():
            if v and v not in first:
                first[v] = len(first) + 1
        lut = np.zeros(n_ref + 1, np.int32)
        for v, rank in first.items():
            lut[v] = rank
        want = lut[ref]
        assert n == n_ref and lab.dtype == np.int32 and (lab == want).all()
    assert label_components(np.zeros((0, 5), bool))[1] == 0


def test_label_components_one_long_snake():
    m = np.zeros((61, 61), bool)
    m[::4] = True  # rows joined alternately at the right and left ends: one component, a 900 px path
    for j, i in enumerate(range(0, 57, 4)):
        m[i : i + 5, 60 if j % 2 == 0 else 0] = True
    lab, n = label_components(m)
    assert n == 1 and (lab[m] == 1).all() and (lab[~m] == 0).all()


def test_drop_small_keeps_components_at_or_above_the_area():
    m = np.zeros((20, 20), bool)
    m[0:5, 0:5] = True  # 25 px
    m[10:13, 10:13] = True  # 9 px
    m[19, 19] = True  # 1 px
    kept = drop_small(m, 9)
    assert kept.sum() == 34 and kept[11, 11] and not kept[19, 19]
    assert drop_small(m, 10).sum() == 25
    assert (drop_small(m, 0) == m).all()


def test_boxes_from_map():
    p = np.zeros((20, 30))
    p[2:6, 3:9] = 0.9
    p[10:18, 20:28] = 0.7
    p[0, 29] = 0.99  # a speck below the area floor
    boxes = boxes_from_map(p, 0.5, min_area_frac=0.01)
    assert [b for b, _, _ in boxes] == [[3, 2, 9, 6], [20, 10, 28, 18]]
    assert boxes[0][1] == pytest.approx(0.9)


def test_seg_datasets(data_root):
    spec = ModelSpec("segmentation", 64, 64, ("wbc", "nucleus"))
    ds = load_seg_dataset("seg", spec, data=data_root)
    assert ds.labels == ("wbc", "nucleus")
    tr, te = ds.split("train"), ds.split("test")
    assert tr.images.shape[1:] == (64, 64, 3) and tr.labels.shape[1:] == (64, 64, 2)
    assert sum(len(ds.split(s)) for s in ("train", "val", "test")) == 300 + 164
    assert not set(tr.ids) & set(te.ids)
    sig = np.array([g == "sigtuple" for g in te.groups])
    assert (te.labels[sig][..., 1] == -1).all() and (te.labels[~sig][..., 1] >= 0).all()
    wbc = te.labels[~sig][..., 0]
    assert 0.05 < wbc.mean() < 0.9  # masks are neither empty nor full
    smear = load_seg_dataset("bccd_smear", ModelSpec("segmentation", 128, 160, ("wbc",)), data=data_root)
    assert len(smear.split("test")) == 72 and smear.split("test").labels.mean() > 0.02


def test_voc_boxes(data_root):
    assert voc_boxes(data_root / "bccd/BCCD/Annotations/BloodImage_00000.xml") == [(260, 177, 491, 376)]


@pytest.fixture(scope="module")
def tiny_unet(tmp_path_factory, data_root):
    from edge_wbc.converters.modes import convert_keras
    from edge_wbc.training import build_model

    d = tmp_path_factory.mktemp("unet")
    spec = ModelSpec("segmentation", 64, 64, ("wbc", "nucleus"), dataset="seg", source_model="unet")
    model = build_model("unet", spec, base=4, depth=2)
    calib = load_seg_dataset("seg", spec, data=data_root).split("train").images[:16]
    (d / "int8.tflite").write_bytes(convert_keras(model, spec, "int8", calib_images=calib))
    (d / "float32.tflite").write_bytes(convert_keras(model, spec, "float32"))
    spec.save(d)
    return d, model, calib


def test_segmenter_int8_tracks_float(tiny_unet):
    d, model, x = tiny_unet
    f = TFLiteSegmenter(d / "float32.tflite").predict(x[:4])
    q = TFLiteSegmenter(d / "int8.tflite")
    assert q.input_dtype == np.uint8
    got = q.predict(x[:4])
    assert got.shape == (4, 64, 64, 2)
    np.testing.assert_allclose(f, np.asarray(model.predict(x[:4].astype(np.float32), verbose=0)), atol=1e-4)
    assert np.abs(got - f).max() < 0.1


def _red_map(img, rim=0):
    """A stand-in model: the window's red channel as its probability map, 0 on a rim of ``rim`` px."""
    a = np.asarray(img, np.float32)[..., :1] / 255.0
    out = np.concatenate([a, 1 - a], axis=-1)
    if rim:
        out[:rim], out[-rim:], out[:, :rim], out[:, -rim:] = 0, 0, 0, 0
    return out


def test_tiled_prediction_puts_every_window_back_in_place(tiny_unet, rng, monkeypatch):
    d, _, _ = tiny_unet
    seg = TFLiteSegmenter(d / "int8.tflite")  # 64 x 64 input
    monkeypatch.setattr(seg, "predict_image", _red_map)
    for h, w in [(1, 1), (1, 300), (40, 30), (64, 64), (150, 233)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        got = seg.predict_tiled(Image.fromarray(img))
        assert got.shape == (h, w, 2)
        np.testing.assert_allclose(got[..., 0], img[..., 0] / 255.0, atol=1e-5)  # each pixel where it came from
    img = rng.integers(0, 256, (150, 233, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        seg.predict_tiled(Image.fromarray(img), window=100)[..., 0], img[..., 0] / 255.0, atol=1e-5
    )
    # a model that fails at its window's rim: the Hann weight lets the windows that see a pixel near
    # their centre decide it (a flat average would pull rim pixels a quarter of the way to 0)
    monkeypatch.setattr(seg, "predict_image", lambda im: _red_map(im, rim=2))
    got = seg.predict_tiled(Image.fromarray(img))[..., 0]
    assert np.abs(got - img[..., 0] / 255.0).max() < 0.02
    with pytest.raises(ValueError, match="tile window 4 px: use at least 8 px"):
        seg.predict_tiled(Image.fromarray(img), window=4)


def test_tiled_prediction_with_the_real_model(tiny_unet, data_root):
    d, _, _ = tiny_unet
    seg = TFLiteSegmenter(d / "int8.tflite")
    field = load_image(data_root / "sigtuple/Test_data/029E137BB177.jpg")  # 335 x 392
    for window in (None, 128):  # 128 px windows are resized to the 64 px input
        p = seg.predict_tiled(field, window)
        assert p.shape == (392, 335, 2) and 0 <= p.min() and p.max() <= 1


def test_segment_maps_drops_specks_and_keeps_nuclei_inside_cells(tiny_unet, monkeypatch):
    d, _, _ = tiny_unet
    seg = TFLiteSegmenter(d / "int8.tflite")  # 64 x 64 input: a window of 4096 px
    maps = np.zeros((200, 300, 2), np.float32)
    maps[10:60, 10:60] = 0.9  # a cell, 2500 px, with a nucleus
    maps[100:110, 200:210, 0] = 0.9  # a speck, 100 px
    maps[150:160, 100:110, 1] = 0.9  # "nucleus" outside any cell
    monkeypatch.setattr(seg, "predict_tiled", lambda img, window=None: maps)
    monkeypatch.setattr(seg, "predict_image", lambda img: maps)
    field = Image.new("RGB", (300, 200))
    wbc, nuc = segment_maps(seg, field, tile=True, min_area_frac=0.0)
    assert wbc.sum() == 2600 and nuc.sum() == 2500  # nothing dropped; the stray nucleus is
    wbc, _ = segment_maps(seg, field, tile=True, min_area_frac=0.5)  # >= 2048 px at native scale: the speck goes
    assert wbc.sum() == 2500
    assert segment_maps(seg, field, tile=True, min_area_frac=0.7)[0].sum() == 0  # 2867 px > 2500
    # resized, area counts at the model's scale: 60000 image px are 4096 model px, so 0.5 is 30000 px
    assert segment_maps(seg, field, min_area_frac=0.5)[0].sum() == 0
    assert segment_maps(seg, field, min_area_frac=0.04)[0].sum() == 2500  # 2400 px
    # tiled with a 100 px window: the fraction is of the window's 10000 px
    assert segment_maps(seg, field, tile=True, min_area_frac=0.2, window=100)[0].sum() == 2500  # 2000 px
    assert segment_maps(seg, field, tile=True, min_area_frac=0.3, window=100)[0].sum() == 0  # 3000 px
    with pytest.raises(ValueError, match="window 100 px applies to tiling only"):
        segment_maps(seg, field, window=100)


def test_segment_cli_writes_masks_at_input_size(tiny_unet, data_root, tmp_path):
    d, _, _ = tiny_unet
    src = data_root / "wbc_seg/dataset1/001.bmp"
    r = runner.invoke(
        app,
        [
            "segment",
            str(src),
            str(data_root / "sigtuple/Test_data"),
            "--model",
            str(d / "int8.tflite"),
            "--out",
            str(tmp_path),
            "--no-tile",  # the default resamples each field to the model's scale: slow for a 64 px test model
        ],
    )
    assert r.exit_code == 0, r.output
    w, h = Image.open(src).size
    for suffix in ("mask", "nucleus", "overlay"):
        im = Image.open(tmp_path / f"001.{suffix}.png")
        assert im.size == (w, h)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "001.mask.png")))) <= {0, 255}
    big = next(p for p in sorted((data_root / "sigtuple/Test_data").glob("*.jpg")) if not p.stem.endswith("-mask"))
    assert Image.open(tmp_path / f"{big.stem}.mask.png").size == Image.open(big).size


def test_segment_cli_tiles_fields_on_request(tiny_unet, data_root, tmp_path):
    d, _, _ = tiny_unet
    field = data_root / "sigtuple/Test_data/029E137BB177.jpg"
    r = runner.invoke(
        app,
        ["segment", str(field), "--model", str(d / "int8.tflite"), "--out", str(tmp_path), "--tile", "--window", "128"],
    )
    assert r.exit_code == 0, r.output
    assert "segmented 1 image(s), tiled in 128x128 px windows" in r.output
    assert Image.open(tmp_path / "029E137BB177.mask.png").size == Image.open(field).size
    r = runner.invoke(
        app, ["segment", str(field), "--model", str(d / "int8.tflite"), "--out", str(tmp_path), "--window", "128"]
    )
    assert r.exit_code == 2 and "--window 128 applies with --tile only" in r.output
    r = runner.invoke(
        app,
        ["segment", str(field), "--model", str(d / "int8.tflite"), "--out", str(tmp_path), "--tile", "--window", "4"],
    )
    assert r.exit_code == 2 and "--window" in r.output


def test_count_cli_json_schema(tiny_unet, tiny_converted, data_root, tmp_path):
    from edge_wbc.converters.modes import convert_keras
    from edge_wbc.training import build_model

    det_spec = ModelSpec("segmentation", 32, 32, ("wbc",), dataset="bccd_smear", source_model="unet")
    det = build_model("unet", det_spec, base=4, depth=2)
    calib = load_seg_dataset("bccd_smear", det_spec, data=data_root).split("train").images[:8]
    (tmp_path / "det.tflite").write_bytes(convert_keras(det, det_spec, "int8", calib_images=calib))
    det_spec.save(tmp_path / "det.json")
    smears = tmp_path / "smears"
    smears.mkdir()
    for n in ("BloodImage_00000", "BloodImage_00001"):
        shutil.copy(data_root / f"bccd/BCCD/JPEGImages/{n}.jpg", smears / f"{n}.jpg")
    (smears / "broken.jpg").write_bytes(b"not a jpeg")
    r = runner.invoke(
        app,
        [
            "count",
            str(smears),
            "--detector",
            str(tmp_path / "det.tflite"),
            "--classifier",
            str(tiny_converted / "int8.tflite"),
            "--json",
            str(tmp_path / "c.json"),
            "--csv",
            str(tmp_path / "c.csv"),
            "--out",
            str(tmp_path / "ann"),
            "--uncertain-below",
            "0.5",
        ],
    )
    assert r.exit_code == 1, r.output  # the broken smear is reported, the others counted
    rep = json.loads((tmp_path / "c.json").read_text())
    assert set(rep) == {"images", "totals", "percent", "differential", "n_answered", "n_uncertain", "reliable",
                        "min_answered", "models", "settings"}
    assert rep["models"]["detector"] == str(tmp_path / "det.tflite")  # not the field detector: no nuclei added
    assert rep["settings"]["detection"] == "at the models' training scales (red-cell estimate)"
    ok = [i for i in rep["images"] if "error" not in i]
    assert len(ok) == 2 and {(i["width"], i["height"]) for i in ok} == {(640, 480)}
    for im in ok:
        assert sum(im["counts"].values()) == len(im["cells"])
        for c in im["cells"]:
            x0, y0, x1, y1 = c["box"]
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 and 0 <= c["confidence"] <= 1
            assert c["label"] == "uncertain" or c["label"] == c["class"]
    assert sum(rep["totals"].values()) == sum(len(i["cells"]) for i in ok)
    if sum(rep["totals"].values()):
        assert sum(rep["percent"].values()) == pytest.approx(100.0)
    assert "broken.jpg" in next(i for i in rep["images"] if "error" in i)["error"]
    assert len(list((tmp_path / "ann").glob("*.count.jpg"))) == 2


def test_count_tiles_fields_with_the_cell_segmenter(tiny_unet, tiny_converted, data_root, tmp_path, monkeypatch):
    from edge_wbc.tasks.count import SmearCounter

    d, _, _ = tiny_unet  # a cell segmenter (wbc, nucleus), 64 px windows: specks are < 4096 / 32 = 128 px
    field = data_root / "sigtuple/Test_data/029E137BB177.jpg"  # 335 x 392
    maps = np.zeros((392, 335, 2), np.float32)
    maps[100:160, 50:110, 0] = 0.9  # a cell of 3600 px
    maps[300:312, 320:335, 0] = 0.8  # a cell cut by the right edge, 180 px
    maps[10:20, 10:20, 0] = 0.9  # a speck, 100 px
    seen = []
    sc = SmearCounter(d / "int8.tflite", tiny_converted / "int8.tflite", tile=True)
    monkeypatch.setattr(sc.det, "predict_tiled", lambda img, window=None: seen.append((img.size, window)) or maps)
    r = sc.count_image(field)
    assert seen == [((335, 392), None)]  # the field at native scale, not resized
    assert sorted(c["box"] for c in r["cells"]) == [
        [50, 100, 110, 160],
        [320, 300, 335, 312],
    ]  # exclusive max, no speck
    assert sorted(c["detection"] for c in r["cells"]) == [0.8, 0.9] and sum(r["counts"].values()) == 2
    sc = SmearCounter(
        d / "int8.tflite", tiny_converted / "int8.tflite", tile=True, window=100
    )  # specks < 10000 / 32 px
    monkeypatch.setattr(sc.det, "predict_tiled", lambda img, window=None: seen.append((img.size, window)) or maps)
    assert [c["box"] for c in sc.count_image(field)["cells"]] == [[50, 100, 110, 160]]
    assert seen[-1] == ((335, 392), 100)
    r = runner.invoke(app, ["count", str(field), "--tile", "--detector", str(d / "int8.tflite"), "--classifier",
                            str(tiny_converted / "int8.tflite"), "--json", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "c.json").read_text())["images"][0]["width"] == 335
    r = runner.invoke(app, ["count", str(field), "--window", "128"])
    assert r.exit_code == 2 and "--window 128 applies with --tile only" in r.output
    with pytest.raises(ValueError, match="window 128 px applies to tiled detection only"):
        SmearCounter(d / "int8.tflite", tiny_converted / "int8.tflite", window=128)


def test_count_tile_defaults_to_the_shipped_cell_segmenter(tiny_converted, data_root, tmp_path, monkeypatch):
    import edge_wbc.tasks.count as count_mod

    used = []
    real = count_mod.SmearCounter.__init__

    def init(self, detector, classifier, **kw):
        used.append((Path(detector).name, kw["tile"]))
        real(self, detector, classifier, **kw)

    monkeypatch.setattr(count_mod.SmearCounter, "__init__", init)
    field = str(data_root / "sigtuple/Test_data/029E137BB177.jpg")
    for flags in (["--tile"], [], ["--no-tile"]):
        r = runner.invoke(app, ["count", field, *flags, "--classifier", str(tiny_converted / "int8.tflite")])
        assert r.exit_code == 0, r.output
    assert used == [("wbc_unet_int8.tflite", True), ("wbc_det_int8.tflite", None),
                    ("smear_unet_int8.tflite", False)]


def test_count_runs_the_small_window_detector_on_a_field_that_fits_one_window(data_root):
    """With the shipped small-window sibling, a BCCD field (about 90 x 70 px at the detector's 0.5 µm/px)
    is one 128 px window of it, and its WBC is found where the 288 px detector finds it; a smartphone
    field (about 540 px there) keeps the 288 px detector. A small-window model that is not a field
    detector is refused by name."""
    from edge_wbc.assets import DEFAULT_DETECTOR, SMALL_FIELD_DETECTOR, assets_dir
    from edge_wbc.errors import ModelError
    from edge_wbc.tasks.count import SmearCounter

    A = assets_dir()
    kw = {"cell_model": A / "wbc_unet_int8.tflite", "nuclei": False}
    det, clf = A / DEFAULT_DETECTOR, A / "wbc_field_int8.tflite"
    two = SmearCounter(det, clf, small_detector=A / SMALL_FIELD_DETECTOR, **kw)
    one = SmearCounter(det, clf, **kw)
    used = []
    real = two.window_model
    two.window_model = lambda size: used.append(real(size).path.name) or real(size)
    bccd = data_root / "bccd/BCCD/JPEGImages/BloodImage_00000.jpg"
    pig = sorted((data_root / "smartphone_pig/test/images").glob("*.jpg"))[0]
    a, b = two.count_image(bccd), one.count_image(bccd)
    assert used == [SMALL_FIELD_DETECTOR] and len(a["cells"]) == len(b["cells"]) == 1
    (x0, y0, x1, y1), (u0, v0, u1, v1) = a["cells"][0]["box"], b["cells"][0]["box"]
    inter = max(0, min(x1, u1) - max(x0, u0)) * max(0, min(y1, v1) - max(y0, v0))
    assert inter / ((x1 - x0) * (y1 - y0) + (u1 - u0) * (v1 - v0) - inter) > 0.8
    two.count_image(pig)
    assert used[-1] == DEFAULT_DETECTOR
    role = "detector, fields that fit one window"
    assert role in two.models() and role not in one.models()
    with pytest.raises(ModelError, match="wbc_unet_int8.tflite: small-window detector is not a field detector"):
        SmearCounter(det, clf, small_detector=A / "wbc_unet_int8.tflite", **kw)


def test_component_boxes_exclusive_max_and_area_floor():
    from edge_wbc.tasks.segment import component_boxes

    m = np.zeros((10, 12), bool)
    m[2:5, 3:7] = True  # 12 px
    m[9, 11] = True  # 1 px in the corner
    assert component_boxes(m, 12) == [([3, 2, 7, 5], 1.0, 12)]
    assert [b for b, _, _ in component_boxes(m, 1)] == [[3, 2, 7, 5], [11, 9, 12, 10]]
    assert component_boxes(m, 13) == []
    prob = np.where(m, 0.75, 0.0)
    assert component_boxes(m, 0, prob)[1] == ([11, 9, 12, 10], 0.75, 1)


def test_count_refuses_a_detector_without_a_wbc_map(tiny_unet, tiny_converted, tmp_path):
    from edge_wbc.errors import ModelError
    from edge_wbc.tasks.count import SmearCounter

    d, _, _ = tiny_unet
    shutil.copy(d / "int8.tflite", tmp_path / "int8.tflite")
    ModelSpec.load(d).replace(labels=("cytoplasm", "nucleus")).save(tmp_path)
    with pytest.raises(ModelError, match=r"detector labels \['cytoplasm', 'nucleus'\] have no 'wbc' map"):
        SmearCounter(tmp_path / "int8.tflite", tiny_converted / "int8.tflite")


def test_count_eval_on_sigtuple_fields_uses_mask_components(data_root, tmp_path, monkeypatch):
    bench = _load_benchmark("count_eval")
    monkeypatch.setattr(
        "sys.argv",
        ["x", "--dataset", "sigtuple", "--tile", "--data", str(data_root), "--json", str(tmp_path / "s.json")],
    )
    bench.main()
    r = json.loads((tmp_path / "s.json").read_text())
    assert r["mode"] == "--tile" and r["detector"] == "wbc_unet_int8.tflite" and r["smears"] == 13 and r["gt_wbc"] == 19
    assert r["subtype_n"] == 0 and r["subtype_accuracy"] is None  # SigTuple fields have no subtype labels
    assert r["true_positives"] > 0  # the shipped cell model finds WBCs there (the BCCD detector finds none)


def _load_benchmark(name):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sigtuple_test_windows_centre_on_wbc_sized_components():
    windows = _load_benchmark("sigtuple_test_eval").windows
    m = np.zeros((100, 150), bool)
    m[40:60, 70:90] = True  # 400 px, centred at (49.5, 79.5)
    m[0:10, 140:150] = True  # 100 px in a corner: the window is shifted inside the image
    m[90:93, 0:3] = True  # 9 px: below the area floor
    assert sorted(windows(m, 32, min_area=50)) == [(0, 118, 100), (34, 64, 400)]
    assert windows(m, 32, min_area=200) == [(34, 64, 400)]
    with pytest.raises(ValueError, match="a 150x100 mask is smaller than the 128 px window"):
        windows(m, 128, min_area=50)


def test_sigtuple_test_eval_runs_on_the_official_test_masks(tiny_unet, data_root, tmp_path, monkeypatch):
    d, _, _ = tiny_unet
    bench = _load_benchmark("sigtuple_test_eval")
    monkeypatch.setattr(
        "sys.argv", ["x", str(d / "int8.tflite"), "--data", str(data_root), "--json", str(tmp_path / "r.json")]
    )
    bench.main()
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["images"] == 13 and r["min_area"] == 1536  # the smallest WBC mask of the SigTuple training split
    res = r["int8.tflite"]  # a 64 px model: each 128 px window is resized to its input
    assert res["n"] == len(res["windows"]) == 19  # 19 WBC-sized annotated components in the 13 masks
    assert all(0 <= w["dice"] <= 1 and w["area"] >= 1536 for w in res["windows"])
    assert res["dice_ci95"][0] <= res["dice"] <= res["dice_ci95"][1]
    assert set(res["full_image"]) == {"tiled", "resized"} and len(res["full_image"]["tiled"]["per_image"]) == 13


def test_seg_eval_reports_pixel_and_label_grid_scores(tiny_unet, data_root, tmp_path, monkeypatch):
    d, _, _ = tiny_unet  # a 64 px model on the "seg" dataset: SigTuple's 4 px blocks are 2 px here
    bench = _load_benchmark("seg_eval")
    monkeypatch.setenv("EDGE_WBC_DATA", str(data_root))
    monkeypatch.setattr("sys.argv", ["x", str(d), "--split", "val", "--json", str(tmp_path / "v.json")])
    bench.main()
    r = json.loads((tmp_path / "v.json").read_text())
    assert r["split"] == "val" and r["label_grids"] == {"wbc/sigtuple": 2}
    res = r["int8.tflite"]
    assert set(res) == {"wbc/sigtuple", "wbc/wbcseg", "nucleus/wbcseg"}  # no "/all" rows, no SigTuple nucleus
    sig = res["wbc/sigtuple"]
    assert (
        sig["grid"] == 2 and sig["dice_grid_ci95"][0] <= sig["dice_grid"] <= sig["dice_grid_ci95"][1] and sig["n"] == 16
    )
    assert "dice_grid" not in res["wbc/wbcseg"]
    monkeypatch.setattr("sys.argv", ["x", str(d), "--split", "val", "--grid", "4", "--json", str(tmp_path / "g.json")])
    bench.main()
    g = json.loads((tmp_path / "g.json").read_text())["int8.tflite"]
    assert all(v["grid"] == 4 for v in g.values()) and g["wbc/wbcseg"]["dice"] == res["wbc/wbcseg"]["dice"]
