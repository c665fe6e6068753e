"""Bad model inputs (issue 8). test_runtime.py already covers: not a flatbuffer, a truncated
.tflite, a missing file, a missing model.json, model.json disagreeing on input size and on label
count, and a labels file whose count does not match."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shipped_int8
from flatbuffers import encode, number_types, table

from edge_wbc.errors import ModelError
from edge_wbc.runtime import TFLiteClassifier, check_tflite_file

RAW_LOAD = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_content=open(sys.argv[1], 'rb').read())
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype']))
it.invoke()
print('survived')
"""


# ---- a minimal TFLite flatbuffer reader (schema field slots of tflite/schema.fbs) ----------------
def _sub(t: table.Table, slot: int) -> table.Table:
    o = t.Offset(4 + 2 * slot)
    return table.Table(t.Bytes, t.Indirect(o + t.Pos))


def _vec(t: table.Table, slot: int) -> tuple[int, int]:
    o = t.Offset(4 + 2 * slot)
    return t.Vector(o), t.VectorLen(o)


def _vec_table(t: table.Table, slot: int, i: int) -> table.Table:
    start, n = _vec(t, slot)
    assert i < n
    return table.Table(t.Bytes, t.Indirect(start + 4 * i))


def output_zero_point_offset(buf: bytes) -> int:
    """Byte offset of the int64 zero point of subgraph 0's output tensor."""
    model = table.Table(bytearray(buf), encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))
    sg = _vec_table(model, 2, 0)  # Model.subgraphs
    outs, _ = _vec(sg, 2)  # SubGraph.outputs
    out_idx = encode.Get(number_types.Int32Flags.packer_type, buf, outs)
    tensor = _vec_table(sg, 0, out_idx)  # SubGraph.tensors
    zp, n = _vec(_sub(tensor, 4), 3)  # Tensor.quantization -> QuantizationParameters.zero_point
    assert n == 1
    return zp


@pytest.fixture()
def crashing_model(tmp_path) -> Path:
    """The shipped int8 model with its output zero point set to 2**31: it passes the interpreter's
    flatbuffer verifier and then segfaults in allocate_tensors (found by the fuzz test)."""
    buf = bytearray(shipped_int8().read_bytes())
    zp = output_zero_point_offset(buf)
    assert int.from_bytes(buf[zp : zp + 8], "little", signed=True) in range(0, 256)
    buf[zp : zp + 8] = (2**31).to_bytes(8, "little")
    p = tmp_path / "zp.tflite"
    p.write_bytes(bytes(buf))
    shutil.copy(shipped_int8().with_suffix(".json"), tmp_path / "zp.json")
    return p


def test_native_crash_is_contained(crashing_model):
    raw = subprocess.run([sys.executable, "-c", RAW_LOAD, str(crashing_model)], capture_output=True, text=True)
    if raw.returncode >= 0:
        pytest.skip(f"this interpreter build does not crash on the file (exit {raw.returncode}); nothing to contain")
    assert "survived" not in raw.stdout  # loading it directly kills the process (SIGSEGV)
    with pytest.raises(ModelError) as e:
        TFLiteClassifier(crashing_model)
    msg = str(e.value)
    assert "zp.tflite: corrupt or unsafe model" in msg and "crashed the interpreter (SIG" in msg and "\n" not in msg


def test_crashing_model_through_the_cli(crashing_model, pbc_files):
    f = pbc_files["monocyte"][0]
    r = subprocess.run([sys.executable, "-m", "edge_wbc", "classify", str(f), "--model", str(crashing_model)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "crashed the interpreter" in r.stderr and "Traceback" not in r.stderr


def test_root_offset_outside_the_file(tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(b"\xff\xff\xff\x7fTFL3" + b"\0" * 64)
    with pytest.raises(ModelError, match=r"m.tflite: corrupt TFLite model \(root table offset"):
        check_tflite_file(p)


def test_model_path_is_a_directory(tmp_path):
    with pytest.raises(ModelError, match="is a directory; pass a .tflite file"):
        TFLiteClassifier(tmp_path)


def test_model_json_not_json(tmp_path):
    shutil.copy(shipped_int8(), tmp_path / "m.tflite")
    (tmp_path / "m.json").write_text("{labels: [oops")
    with pytest.raises(ModelError, match=r"m.json: not valid JSON"):
        TFLiteClassifier(tmp_path / "m.tflite")
    (tmp_path / "m.json").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ModelError, match=r"m.json: not valid JSON"):
        TFLiteClassifier(tmp_path / "m.tflite")


@pytest.mark.parametrize("content,needle", [
    (b"\xff\xfebasophil\n", "labels file is not UTF-8 text"),
    (b"\n \n\n", "labels file is empty"),
    (b"a\nb\nc\nd\ne\nf\ng\na\n", "labels file repeats 'a' (8 lines; it takes one class name a line"),
    # a JSON file given as --labels: three repeats shown, not every repeated line
    (b"{\n" + b'  "x": 1,\n' * 40 + b'  "y": 2,\n' * 3 + b"  {\n  }\n  {\n  }\n}\n",
     """labels file repeats '"x": 1,', '"y": 2,', '{' and 1 more (49 lines;"""),
    (b"a\nb\nc\n", "has 3 labels but bloodmnist_int8.tflite has 8 classes"),
])
def test_bad_labels_files(tmp_path, content, needle):
    (tmp_path / "labels.txt").write_bytes(content)
    with pytest.raises(ModelError) as e:
        TFLiteClassifier(shipped_int8(), labels_file=tmp_path / "labels.txt")
    assert needle in str(e.value) and "labels.txt" in str(e.value)


def test_shipped_model_still_loads_and_agrees_without_probe(pbc_files):
    files = [f for fs in pbc_files.values() for f in fs[:1]]
    a = TFLiteClassifier(shipped_int8()).predict(files)
    b = TFLiteClassifier(shipped_int8(), probe=False).predict(files)
    assert np.array_equal(a, b)


# ---- .keras files are loaded with safe_mode=True ------------------------------------------------
@pytest.fixture(scope="module")
def lambda_keras(tmp_path_factory):
    """A .keras whose Lambda layer writes a marker file whenever its Python code runs."""
    keras = pytest.importorskip("keras")
    d = tmp_path_factory.mktemp("lambda")
    marker = d / "code_ran.txt"
    fn = eval(f"lambda x, _m={str(marker)!r}: (__import__('pathlib').Path(_m).write_text('ran'), x)[1]")
    inp = keras.Input((28, 28, 3))
    out = keras.layers.Dense(8, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(fn)(inp)))
    keras.Model(inp, out).save(d / "model.keras")
    assert marker.exists()  # building the model ran the lambda: the marker does detect its code running
    marker.unlink()
    return d, marker


def test_keras_lambda_refused_by_the_converter_loader(lambda_keras):
    from edge_wbc.converters.pipeline import load_keras

    d, marker = lambda_keras
    with pytest.raises(ModelError) as e:
        load_keras(d)
    msg = str(e.value)
    assert "model.keras: cannot load the Keras model safely" in msg and "Lambda" in msg and "\n" not in msg
    assert not marker.exists()  # refused before any of its code ran


def test_keras_lambda_refused_by_the_bench_worker(lambda_keras, tmp_path, monkeypatch):
    """The bench's worker (normally its own process) run in this one: TF's thread settings can only be
    set before TF starts, so those two calls are stubbed; the load itself is the real one."""
    import tensorflow as tf

    from edge_wbc.bench import worker as benchworker

    d, marker = lambda_keras
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda n: None)
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads", lambda n: None)
    np.save(tmp_path / "images.npy", np.zeros((2, 28, 28, 3), np.uint8))
    job = {"path": str(d / "model.keras"), "threads": 1, "runs": 2, "warmup": 0, "eval": True,
           "images": str(tmp_path / "images.npy"), "out": str(tmp_path / "res.json")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert benchworker.main([str(tmp_path / "job.json")]) == 1
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["status"] == "failed" and "Lambda" in res["error"] and "\n" not in res["error"], res
    assert not marker.exists()
