import shutil

import numpy as np
import pytest

from edge_wbc.errors import ModelError
from edge_wbc.runtime import TFLiteClassifier, interpreter_backend
from edge_wbc.spec import ModelSpec


def test_backend_preference():
    _, name, version = interpreter_backend()
    assert name == "ai_edge_litert" and version != "unknown"
    with pytest.raises(
        ModelError, match="invalid interpreter 'tflite': valid choices are ai_edge_litert, tflite_runtime, tensorflow"
    ):
        interpreter_backend("tflite")


def test_tf_lite_fallback_gives_same_probs(tiny_converted, bloodmnist):
    x = bloodmnist.split("test").images[:20]
    a = TFLiteClassifier(tiny_converted / "int8.tflite").predict(x)
    b = TFLiteClassifier(tiny_converted / "int8.tflite", backend="tensorflow").predict(x)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_model_files(tmp_path, tiny_converted):
    shutil.copy(tiny_converted / "model.json", tmp_path / "model.json")
    (tmp_path / "labels.tflite").write_text("basophil\neosinophil\n")
    with pytest.raises(ModelError, match="labels.tflite: not a TFLite model"):
        TFLiteClassifier(tmp_path / "labels.tflite")
    data = (tiny_converted / "int8.tflite").read_bytes()
    (tmp_path / "trunc.tflite").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="trunc.tflite: the interpreter cannot load it"):
        TFLiteClassifier(tmp_path / "trunc.tflite")
    with pytest.raises(ModelError, match="no such model file"):
        TFLiteClassifier(tmp_path / "missing.tflite")


def test_missing_or_disagreeing_model_json(tmp_path, tiny_converted):
    shutil.copy(tiny_converted / "int8.tflite", tmp_path / "m.tflite")
    with pytest.raises(ModelError, match="model.json not found"):
        TFLiteClassifier(tmp_path / "m.tflite")
    spec = ModelSpec.load(tiny_converted)
    spec.replace(input_height=32, input_width=32).save(tmp_path)
    with pytest.raises(ModelError, match=r"input shape \(1, 28, 28, 3\) disagrees with model.json \(1, 32, 32, 3\)"):
        TFLiteClassifier(tmp_path / "m.tflite")
    spec.replace(labels=("x", "y", "z")).save(tmp_path)
    with pytest.raises(ModelError, match="model has 8 outputs but model.json lists 3 labels"):
        TFLiteClassifier(tmp_path / "m.tflite")


def test_labels_file_count_must_match(tmp_path, tiny_converted):
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    with pytest.raises(ModelError, match="has 3 labels but int8.tflite has 8 classes"):
        TFLiteClassifier(tiny_converted / "int8.tflite", labels_file=tmp_path / "labels.txt")
    names = [f"c{i}" for i in range(8)]
    (tmp_path / "labels.txt").write_text("\n".join(names))
    assert TFLiteClassifier(tiny_converted / "int8.tflite", labels_file=tmp_path / "labels.txt").labels == tuple(names)


def test_predict_paths_equals_arrays(tiny_converted, pbc_files):
    from edge_wbc.preprocess import preprocess

    clf = TFLiteClassifier(tiny_converted / "int8.tflite")
    files = [f for fs in pbc_files.values() for f in fs[:1]]
    a = clf.predict(files)
    b = clf.predict(np.stack([preprocess(f, clf.spec) for f in files]))
    assert np.array_equal(a, b) and a.shape == (8, 8)
