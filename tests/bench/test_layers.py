"""edge-wbc inspect: per-layer int8 error of a shipped int8 model against its float16 sibling."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_wbc.bench.layers import layer_errors, layer_name, match_tensors, resolve_pair
from edge_wbc.cli import app
from edge_wbc.errors import ModelError
from edge_wbc.spec import ModelSpec

ASSETS = Path(__file__).resolve().parents[2] / "android_assets"
runner = CliRunner()


@pytest.fixture(scope="module")
def val_images(data_root):
    z = np.load(data_root / "bloodmnist" / "bloodmnist.npz")
    return z["val_images"][:6]


def test_layer_name():
    assert layer_name("wbcnet_1/s1a_relu_1/Relu;wbcnet_1/s1a_bn_1/batchnorm/add_1") == "s1a_relu"
    assert layer_name("wbcnet_1/gap_1/Mean") == "gap"
    assert layer_name("model/probs/MatMul") == "probs"


def test_match_by_name_then_by_order():
    q = [{"name": "a", "op": "CONV_2D"}, {"name": "b", "op": "CONV_2D"}, {"name": "c", "op": "MEAN"}]
    f_same = [{"name": "c", "op": "MEAN"}, {"name": "a", "op": "CONV_2D"}, {"name": "b", "op": "CONV_2D"}]
    assert [(x["name"], y["name"]) for x, y in match_tensors(q, f_same)] == [("a", "a"), ("b", "b"), ("c", "c")]
    f_other = [{"name": "x1", "op": "CONV_2D"}, {"name": "m", "op": "MEAN"}, {"name": "x2", "op": "CONV_2D"}]
    assert [(x["name"], y["name"]) for x, y in match_tensors(q, f_other)] == [("a", "x1"), ("b", "x2"), ("c", "m")]


def test_bloodmnist_int8_vs_float16(val_images):
    rows = layer_errors((ASSETS / "bloodmnist_int8.tflite").read_bytes(),
                        (ASSETS / "bloodmnist_float16.tflite").read_bytes(), val_images)
    layers = {r["layer"] for r in rows}
    assert {"s1a_relu", "s3b_relu", "gap", "probs"} <= layers
    sq = [r["sqnr_db"] for r in rows]
    assert sq == sorted(sq)  # worst first
    assert 15 < sq[0] < 60 and all(np.isfinite(sq))  # int8 activations: ~30 dB, not identical, not noise
    for r in rows:
        assert 0.99 < r["cosine"] <= 1.0
        assert r["max_abs_err_steps"] >= 0.5  # at least the rounding of one step
        assert 0.0 <= r["clipped_share"] <= 1.0
    # the first conv sees only the input pixels' rounding: it must be better than the deepest conv
    by = {r["layer"]: r for r in rows}
    assert by["s1a_relu"]["sqnr_db"] > by["s3a_relu"]["sqnr_db"]


def test_float_against_itself_is_exact(val_images):
    f = (ASSETS / "bloodmnist_float16.tflite").read_bytes()
    with pytest.raises(ModelError, match="no int8 tensor"):
        layer_errors(f, f, val_images)


def test_missing_float_sibling_names_the_file(tmp_path):
    shutil.copy(ASSETS / "bloodmnist_int8.tflite", tmp_path / "bloodmnist_int8.tflite")
    with pytest.raises(ModelError, match=r"no float sibling.*bloodmnist_float32\.tflite.*bloodmnist\.keras"):
        resolve_pair(tmp_path / "bloodmnist_int8.tflite")
    with pytest.raises(ModelError, match=r"needs int8\.tflite"):
        resolve_pair(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_sibling_preference():
    i8, f = resolve_pair(ASSETS / "pbc64_int8.tflite")
    assert f.name == "pbc64_float16.tflite"
    i8, f = resolve_pair(ASSETS / "bloodmnist_int8.tflite")
    assert f.name == "bloodmnist.keras"


def test_cli_json_and_plot(tmp_path, data_root):
    out, png = tmp_path / "l.json", tmp_path / "l.png"
    r = runner.invoke(app, ["inspect", str(ASSETS / "bloodmnist_int8.tflite"), "-n", "4", "--json", str(out),
                            "--float", str(ASSETS / "bloodmnist_float16.tflite"), "--plot", str(png),
                            "--time", "--runs", "3", "--data", str(data_root)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["float_reference"].endswith("bloodmnist_float16.tflite") and rep["n_images"] == 4
    assert all("sqnr_db" in x and x["sqnr_db"] > 15 for x in rep["layers"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "s3a_relu" in r.output
    tm = rep["time"]  # --time: the per-op table, and the plot gets the stacked bar under the SQNR panel
    assert len(tm["layers"]) == 13 and tm["runs"] == 3
    assert tm["sum_ms"] == pytest.approx(sum(x["p50_ms"] for x in tm["layers"]))
    from PIL import Image

    with Image.open(png) as im:  # the two-panel figure is 6.8 in tall at 120 dpi (SQNR alone: 4 in)
        assert im.size[1] == pytest.approx(6.8 * 120, abs=2)


def test_cli_missing_sibling_exit_2(tmp_path):
    shutil.copy(ASSETS / "pbc64_int8.tflite", tmp_path / "pbc64_int8.tflite")
    r = runner.invoke(app, ["inspect", str(tmp_path / "pbc64_int8.tflite")])
    assert r.exit_code == 2
    assert "pbc64_float32.tflite" in r.output


def test_layer_times_cut_every_op():
    from edge_wbc.bench.layertime import layer_times, op_models

    content = (ASSETS / "bloodmnist_int8.tflite").read_bytes()
    models = op_models(content)
    assert len(models) == 13 and models[1]["tensor"].startswith("wbcnet_1/s1a_relu")
    r = layer_times(content, runs=20, warmup=2)
    ops = [x["op"] for x in r["layers"]]
    assert ops.count("CONV_2D") == 6 and ops[0] == "QUANTIZE" and not any("error" in x for x in r["layers"])
    assert abs(sum(x["share"] for x in r["layers"]) - 1) < 1e-9 and r["whole_ms"] > 0
    convs = [x for x in r["layers"] if x["op"] == "CONV_2D"]
    assert sum(x["macs"] for x in convs) == 25_514_496  # 25.5 MMAC: the six convs (FC: 768)
    assert all(x["p50_ms"] > 0 for x in r["layers"])


def test_time_bar_stacks_every_op_to_the_measured_sum():
    import matplotlib.pyplot as plt

    from edge_wbc.bench.layers import sqnr_figure
    from edge_wbc.bench.layertime import layer_times

    tm = layer_times((ASSETS / "bloodmnist_int8.tflite").read_bytes(), runs=5, warmup=1)
    rep = {"model": "bloodmnist_int8.tflite", "n_images": 4, "time": tm,
           "layers": [{"depth": i, "layer": f"l{i}", "op": "CONV_2D", "sqnr_db": 30.0} for i in range(3)]}
    fig = sqnr_figure(rep)
    try:
        assert len(fig.axes) == 2
        bars = {p.get_gid(): p for p in fig.axes[1].patches}
        ops = [bars[f"op{r['index']}"] for r in tm["layers"]]
        assert len(bars) == len(tm["layers"]) + 1 == 14  # 13 ops + the whole model
        # each segment is its op's p50, stacked in graph order, and together they are the measured sum
        assert [p.get_width() for p in ops] == pytest.approx([r["p50_ms"] for r in tm["layers"]])
        starts = np.cumsum([0] + [r["p50_ms"] for r in tm["layers"]])[:-1]
        assert [p.get_x() for p in ops] == pytest.approx(list(starts))
        assert sum(p.get_width() for p in ops) == pytest.approx(tm["sum_ms"])
        assert ops[-1].get_x() + ops[-1].get_width() == pytest.approx(tm["sum_ms"])
        assert bars["whole"].get_width() == pytest.approx(tm["whole_ms"]) and bars["whole"].get_x() == 0
        assert f"sum {tm['sum_ms']:.4f} ms vs whole {tm['whole_ms']:.4f} ms" in fig.axes[1].get_title()
        assert {t.get_text() for t in fig.axes[1].get_legend().get_texts()} == {r["op"] for r in tm["layers"]}
    finally:
        plt.close(fig)
    no_time = sqnr_figure({k: v for k, v in rep.items() if k != "time"})
    assert len(no_time.axes) == 1
    plt.close(no_time)



def test_layer_times_feed_each_op_the_values_it_sees_in_the_whole_model():
    """The U-Net's RESHAPE/TILE/CONCATENATION take shapes computed at run time: on random inputs 12 of
    its 82 ops failed (negative RESHAPE dimensions, XNNPACK unable to reshape a CONCATENATION)."""
    from edge_wbc.bench.layertime import _random_inputs, _ready, _tensor_values, layer_times, op_models

    content = (ASSETS / "wbc_unet_int8.tflite").read_bytes()
    r = layer_times(content, runs=2, warmup=1)
    assert len(r["layers"]) == 82 and [x for x in r["layers"] if "error" in x] == []
    assert {"RESHAPE", "TILE", "CONCATENATION"} <= {x["op"] for x in r["layers"]}
    # a CONCATENATION whose first input is [1, 1, 16, 64] in the file and [1, 16, 16, 64] at run time
    whole = _ready(content, 1)
    values = _tensor_values(content, _random_inputs(whole))
    om = next(o for o in op_models(content) if o["index"] == 28)
    sub = _ready(om["content"], 1, values)
    sub.invoke()
    out = sub.get_output_details()[0]["index"]
    assert sub.get_tensor(out).shape == (1, 16, 16, 128)
    np.testing.assert_array_equal(sub.get_tensor(out), values[out])  # the op alone computes what it did inside


def test_interleaved_p50_times_every_interpreter_in_the_same_rounds():
    from edge_wbc.bench.layertime import interleaved_p50

    order = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def invoke(self):
            order.append(self.name)

    a, b = Fake("a"), Fake("b")
    p50 = interleaved_p50([a, b], runs=4, warmup=1, burst=2)
    assert len(p50) == 2 and all(v >= 0 for v in p50)
    # warmup, then per round: one untimed + 2 timed invokes of a, then of b
    assert order == ["a", "b"] + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3


def test_layer_times_clock_choices():
    from edge_wbc.bench.layertime import interleaved_p50, layer_times

    with pytest.raises(ValueError, match="invalid clock 'gpu': valid choices are wall, cpu"):
        interleaved_p50([], runs=1, warmup=0, clock="gpu")
    with pytest.raises(ValueError, match="needs threads=1, not 2"):
        layer_times((ASSETS / "bloodmnist_int8.tflite").read_bytes(), runs=1, threads=2, clock="cpu")
    r = layer_times((ASSETS / "bloodmnist_int8.tflite").read_bytes(), runs=5, warmup=1, clock="cpu")
    assert r["clock"] == "cpu" and r["whole_ms"] > 0 and all(x["p50_ms"] > 0 for x in r["layers"])


def test_inspect_on_a_folder_of_images(tmp_path, data_root):
    from edge_wbc.bench.layers import folder_images
    from edge_wbc.errors import DataError

    for f in sorted((data_root / "pbc128" / "test" / "neutrophil").glob("*.jpg"))[:3]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "notes.txt").write_text("not an image")
    spec = ModelSpec.load(ASSETS / "bloodmnist_int8.json")
    x = folder_images(tmp_path, spec, 2)
    assert x.shape == (2, 28, 28, 3) and x.dtype == np.uint8
    with pytest.raises(DataError, match="notes.txt: not a folder"):
        folder_images(tmp_path / "notes.txt", spec, 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no image files there"):
        folder_images(tmp_path / "empty", spec, 2)
    r = runner.invoke(app, ["inspect", str(ASSETS / "bloodmnist_int8.tflite"), "-n", "3", "--images", str(tmp_path),
                            "--float", str(ASSETS / "bloodmnist_float16.tflite"), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["images"] == "3 given images" and all(row["sqnr_db"] > 20 for row in rep["layers"])
