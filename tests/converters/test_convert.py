"""Every registered classifier x every quantization mode converts; parity with Keras."""

import numpy as np
import pytest

from edge_wbc.runtime import TFLiteClassifier
from edge_wbc.spec import ModelSpec

MODES = ["float32", "float16", "dynamic", "int8", "int16x8"]
# the layers an int8 conversion keeps in float by default (their class sets int8_keep_float)
KEEP_FLOAT = {"fieldnet": "standardize", "fieldnet_ibn": "standardize,s1a_in,s1b_in"}
# measured and not adopted (docs/field.md): in CI only its int8 conversion (the layers kept in float), to keep CI short
SLOW_EXCEPT_INT8 = {"fieldnet_ibn"}
# the per-image standardization kept in float inside an int8 model, between a DEQUANTIZE and a QUANTIZE
STANDARDIZE_OPS = {"DEQUANTIZE", "MEAN", "SQUARED_DIFFERENCE", "ADD", "RSQRT", "SUB", "MUL", "QUANTIZE"}


def classifiers():
    from edge_wbc.training import list_models

    return [m for m in list_models() if m != "unet"]


@pytest.fixture(scope="module")
def calib(bloodmnist):
    return bloodmnist.split("train").images[:32]


def cases():
    from edge_wbc.converters import ConversionError

    for mode in MODES:
        for m in classifiers():
            if (m, mode) == ("edgenet", "int16x8"):
                # LiteRT refuses to prepare this untrained net's int16 DEPTHWISE_CONV_2D
                # (kernel_util.cc: no_integer_overflow_from_quantization): it must be a clear error.
                yield pytest.param(m, mode, marks=pytest.mark.xfail(raises=ConversionError, strict=True))
            elif m in KEEP_FLOAT and mode == "int16x8":
                # LiteRT has no int16 SQUARED_DIFFERENCE (the per-image standardization): refused at the check
                from edge_wbc.errors import ModelError

                xfail = pytest.mark.xfail(raises=(ModelError, ConversionError), strict=True)
                yield pytest.param(m, mode, marks=[xfail, pytest.mark.slow] if m in SLOW_EXCEPT_INT8 else xfail)
            elif m in SLOW_EXCEPT_INT8 and mode != "int8":
                yield pytest.param(m, mode, marks=pytest.mark.slow)
            else:
                yield m, mode


@pytest.mark.parametrize("model_name,mode", list(cases()))
def test_registry_x_modes_convert(model_name, mode, calib, tmp_path):
    from edge_wbc.converters.modes import convert_keras, default_keep_float
    from edge_wbc.converters.pipeline import verify
    from edge_wbc.training import build_model

    labels = ("a", "b") if model_name == "binary2" else tuple("abcdefgh")
    spec = ModelSpec("binary" if model_name == "binary2" else "classification", 28, 28, labels)
    model = build_model(model_name, spec)
    opts = {"int8": {"io": "uint8"}, "int16x8": {"io": "float32"}}.get(mode, {})  # float modes take no options
    content = convert_keras(model, spec, mode, calib_images=calib, **opts)
    keep = default_keep_float(model) if mode == "int8" else None  # fieldnet's standardize stays in float
    info = verify(content, mode, {**opts, "keep_float": keep} if keep else opts)  # wrong types, stray float ops
    if mode == "int8":
        kept = {o.split("#")[0] for o in info["float_ops"]}
        assert info["input_dtype"] == "uint8" and keep == KEEP_FLOAT.get(model_name)
        assert kept == (STANDARDIZE_OPS if keep else set())
        assert info["input_quantization"] == [1.0, 0.0]  # raw pixels in, unchanged
    (tmp_path / "m.tflite").write_bytes(content)
    p = TFLiteClassifier(tmp_path / "m.tflite", spec=spec).predict(calib[:4])
    assert p.shape == (4, len(labels))
    np.testing.assert_allclose(p.sum(1), 1.0, atol=0.02)


def test_float32_matches_keras(tiny_converted, bloodmnist):
    from edge_wbc.converters.pipeline import keras_probs, load_keras

    x = bloodmnist.split("val").images[:100]
    spec = ModelSpec.load(tiny_converted)
    ref = keras_probs(load_keras(tiny_converted), x, spec)
    got = TFLiteClassifier(tiny_converted / "float32.tflite").predict(x)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_int8_agrees_on_real_images(tiny_converted, bloodmnist):
    x = bloodmnist.split("test").images[:300]
    f = TFLiteClassifier(tiny_converted / "float32.tflite").predict(x)
    q = TFLiteClassifier(tiny_converted / "int8.tflite")
    assert q.input_dtype == np.uint8 and q.output_dtype == np.uint8
    agree = (f.argmax(1) == q.predict(x).argmax(1)).mean()
    assert agree >= 0.9, agree


def test_conversion_files_and_spec(tiny_converted):
    import json

    for mode in ("float32", "float16", "int8"):
        s = ModelSpec.load(tiny_converted / f"{mode}.json")
        assert s.quantization == mode and s.labels == ModelSpec.load(tiny_converted).labels
        rep = json.loads((tiny_converted / f"{mode}.report.json").read_text())
        assert rep["agreement_n"] == 200 and 0.0 <= rep["agreement"] <= 1.0
    assert json.loads((tiny_converted / "int8.report.json").read_text())["calibration_images"] == 100


def test_invalid_mode_and_test_calibration(tiny_model_dir, data_root):
    from edge_wbc.converters import ConversionError, convert_model_dir

    with pytest.raises(ConversionError, match="invalid mode 'int4': valid choices are float32, float16"):
        convert_model_dir(tiny_model_dir, "int4", data=data_root)
    with pytest.raises(ConversionError, match="test split is refused"):
        convert_model_dir(tiny_model_dir, "int8", data=data_root, calib_split="test", allow_chance=True)


def test_refuses_model_that_does_not_beat_chance(tiny_model_dir, tmp_path, data_root):
    import json
    import shutil

    from edge_wbc.converters import ConversionError, convert_model_dir

    d = tmp_path / "m"
    d.mkdir()
    for f in ("model.keras", "model.json", "metrics.json"):
        shutil.copy(tiny_model_dir / f, d / f)
    m = json.loads((d / "metrics.json").read_text())
    m.update(beats_chance=False, val_accuracy=0.2, majority_class_val_accuracy=0.19)
    (d / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ConversionError, match="does not beat the majority class"):
        convert_model_dir(d, "float32", data=data_root)
    assert not (d / "float32.tflite").exists()


def test_broken_conversion_writes_nothing(tiny_model_dir, tmp_path, data_root):
    import shutil

    from edge_wbc.converters import ConversionError, convert_model_dir

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    with pytest.raises(ConversionError, match="agreement .* is below 1.01"):
        convert_model_dir(d, "dynamic", data=data_root, min_agreement=1.01, allow_chance=True)
    assert not (d / "dynamic.tflite").exists()


TFMOT_MODES = ["qat", "pruned", "clustered"]


# pruning and clustering wrap the same layer kinds in every model: in CI they run on one model of each
# kind (DepthwiseConv: tiny, conv-BN and the Dense head: wbcnet, the custom standardization: fieldnet);
# the rest of the matrix, Dense-only fnn1 included, is `slow` (pytest -m slow), to keep CI under 20
# minutes. QAT runs on all.
PRUNE_CLUSTER_IN_CI = {"tiny", "wbcnet", "fieldnet"}


def tfmot_cases():
    from edge_wbc.converters import ConversionError

    for mode in TFMOT_MODES:
        for m in classifiers():
            if m in KEEP_FLOAT and mode == "qat":
                # tfmot's QAT wrapper cannot quantize the custom standardization layer (a TFOpLambda in tf_keras)
                xfail = pytest.mark.xfail(raises=ConversionError, strict=True)
                yield pytest.param(m, mode, marks=[xfail, pytest.mark.slow] if m in SLOW_EXCEPT_INT8 else xfail)
            elif m in SLOW_EXCEPT_INT8:
                yield pytest.param(m, mode, marks=pytest.mark.slow)
            elif mode != "qat" and m not in PRUNE_CLUSTER_IN_CI:
                yield pytest.param(m, mode, marks=pytest.mark.slow)
            else:
                yield m, mode


@pytest.mark.parametrize("model_name,mode", list(tfmot_cases()))
def test_registry_x_tfmot_modes_convert(model_name, mode, data_root):
    """QAT / pruning / clustering rebuild each architecture in tf_keras, fine-tune briefly, go int8."""
    from edge_wbc.converters.modes import convert_keras
    from edge_wbc.converters.pipeline import verify
    from edge_wbc.training import build_model

    if model_name == "binary2":
        spec = ModelSpec("binary", 28, 28, ("mononuclear", "polynuclear"), dataset="bccd2", source_model=model_name)
    else:
        spec = ModelSpec("classification", 28, 28, tuple("abcdefgh"), dataset="bloodmnist", source_model=model_name)
    model = build_model(model_name, spec)
    own = {"pruned": {"sparsity": 0.5}, "clustered": {"clusters": 8}}.get(mode, {})
    content = convert_keras(model, spec, mode, data=str(data_root), epochs=1, limit=64, calib=16, **own)
    info = verify(content, mode, {"io": "uint8"})
    assert info["input_dtype"] == "uint8" and info["float_ops"] == []
    scale, zp = info["input_quantization"]
    if mode == "qat":  # QAT learns the input range from the data (e.g. 0..242): the runtime applies it
        assert 0.5 < scale <= 1.05
    else:  # calibrated on raw pixels: scale 1, zero point 0, the pixels themselves
        assert (scale, zp) == (pytest.approx(1.0, abs=0.02), 0)


def test_pruned_weights_are_sparse(tiny_model_dir, data_root, tmp_path):
    import shutil

    from edge_wbc.converters import convert_model_dir
    from edge_wbc.runtime import interpreter_backend

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    r = convert_model_dir(d, "pruned", data=data_root, calib=32, allow_chance=True, min_agreement=0.0,
                          epochs=1, limit=256, sparsity=0.7)
    assert r["sparsity"] == 0.7 and r["gzip_bytes"] < r["size_bytes"]
    Interp, _, _ = interpreter_backend()
    it = Interp(model_path=r["path"])
    it.allocate_tensors()
    pw = next(op for op in it._get_ops_details() if op["op_name"] == "CONV_2D" and
              it.get_tensor_details()[op["inputs"][1]]["shape"][-1] == 8)  # the 1x1 conv 8 -> 16
    w = it.get_tensor(pw["inputs"][1])
    assert (w == 0).mean() >= 0.6


def test_per_tensor_has_no_per_channel_weights(tiny_model_dir, data_root, tmp_path):
    import shutil

    from edge_wbc.converters import convert_model_dir

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    per_ch = convert_model_dir(d, "int8", data=data_root, calib=32, allow_chance=True, min_agreement=0.0)
    per_t = convert_model_dir(
        d, "int8", data=data_root, calib=32, allow_chance=True, min_agreement=0.0, per_tensor=True
    )
    assert len(per_ch["per_channel_tensors"]) >= 2 and per_t["per_channel_tensors"] == []
    assert 0.0 <= per_ch["clipped_share"] < 0.05


def test_pruned_then_clustered_keeps_zeros_and_few_values(tiny_model_dir, data_root, tmp_path):
    import shutil

    from edge_wbc.converters import convert_model_dir
    from edge_wbc.runtime import interpreter_backend

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    r = convert_model_dir(d, "pruned", data=data_root, calib=32, allow_chance=True, min_agreement=0.0,
                          epochs=1, limit=256, sparsity=0.5, prune_clusters=4)
    assert r["prune_clusters"] == 4
    Interp, _, _ = interpreter_backend()
    it = Interp(model_path=r["path"])
    it.allocate_tensors()
    details = it.get_tensor_details()
    pw = next(
        op for op in it._get_ops_details() if op["op_name"] == "CONV_2D" and details[op["inputs"][1]]["shape"][-1] == 8
    )
    w = it.get_tensor(pw["inputs"][1])
    assert (w == 0).mean() >= 0.45  # pruning's zeros survive the clustering
    # 4 float centroids per layer; per-channel int8 quantization maps them to <= 4 values per output channel
    for ch in range(w.shape[0]):
        assert len(np.unique(w[ch][w[ch] != 0])) <= 4


def test_qat_keeps_best_val_epoch_with_frozen_batchnorm(tiny_model_dir, data_root, tmp_path):
    """QAT fine-tunes with BatchNorm frozen and converts the epoch with the best fake-quantized val accuracy."""
    import json
    import shutil

    from edge_wbc.converters import convert_model_dir

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    r = convert_model_dir(d, "qat", data=data_root, calib=32, allow_chance=True, min_agreement=0.0,
                          epochs=3, limit=256, lr=1e-3, allow_below_ptq=True, log=lambda s: None)
    assert r["val_n"] == 1712 and 0.0 <= r["ptq_val_accuracy"] <= 1.0  # the whole BloodMNIST val split
    ft = r["fine_tuning"]
    assert ft["frozen_batchnorm_layers"] == 1  # tiny has one BatchNorm (c1_bn)
    assert [h["epoch"] for h in ft["history"]] == [1, 2, 3]
    accs = [h["val_accuracy"] for h in ft["history"]]
    assert ft["selected_val_accuracy"] == max(accs)
    assert ft["selected_epoch"] == accs.index(max(accs)) + 1  # ties: the earliest epoch
    assert json.loads((d / "qat.report.json").read_text())["fine_tuning"]["selected_epoch"] == ft["selected_epoch"]


def test_qat_below_ptq_on_val_is_refused(tiny_model_dir, data_root, tmp_path):
    """A QAT run that ends below plain PTQ int8 of the same model on val writes nothing."""
    import shutil

    from edge_wbc.converters import ConversionError, convert_model_dir

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    # lr 0.5 wrecks the fine-tuned weights: its val accuracy falls far below PTQ's
    with pytest.raises(
        ConversionError, match=r"qat: val accuracy 0\.\d{4} is below PTQ int8's 0\.\d{4} on the same model \(1712 val"
    ):
        convert_model_dir(d, "qat", data=data_root, calib=32, allow_chance=True, min_agreement=0.0,
                          epochs=1, limit=256, lr=0.5, log=lambda s: None)
    assert not (d / "qat.tflite").exists() and not (d / "qat.report.json").exists()


def test_frozen_batchnorm_keeps_its_statistics_under_qat():
    """In the tf_keras worker, a frozen BatchNorm inside tfmot's QAT wrappers keeps its moving mean."""
    import os
    import subprocess
    import sys

    code = """
import numpy as np
from edge_wbc.converters.tfmot_worker import _setup, apply_qat, freeze_batchnorm
from edge_wbc.spec import ModelSpec
from edge_wbc.training import build_model
tf, tfk, tfmot = _setup()
spec = ModelSpec("classification", 28, 28, tuple("abcdefgh"), source_model="tiny")
x = np.random.default_rng(0).integers(0, 255, (128, 28, 28, 3)).astype("float32")
y = np.eye(8)[np.random.default_rng(1).integers(0, 8, 128)]
for freeze in (False, True):
    m = build_model("tiny", spec, K=tfk)
    n = freeze_batchnorm(m, tfk) if freeze else 0
    q, _ = apply_qat(m, tfmot, tfk)
    mean = [v for v in q.weights if "moving_mean" in v.name][0]
    before = mean.numpy().copy()
    q.compile("adam", "categorical_crossentropy")
    q.fit(x, y, epochs=1, verbose=0)
    print(freeze, n, bool(np.allclose(before, mean.numpy())))
"""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-3:-1] == ["False 0 False", "True 1 True"], out.stdout


def test_convert_seed_draws_the_sample_but_keeps_the_training_split(tiny_model_dir, data_root, tmp_path, monkeypatch):
    import json
    import shutil

    from edge_wbc.converters import convert_model_dir, pipeline
    from edge_wbc.spec import ModelSpec

    split_seeds = []
    real_load = pipeline.load_dataset

    def load_dataset(name, spec, data=None, seed=0, **kw):
        split_seeds.append(seed)
        return real_load(name, spec, data=data, seed=seed, **kw)

    monkeypatch.setattr(pipeline, "load_dataset", load_dataset)

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    assert ModelSpec.load(d).split_seed == 1  # the fixture trains with seed 1, and model.json keeps it
    quiet = dict(data=data_root, calib=50, allow_chance=True, min_agreement=0.0, log=lambda s: None)
    a = convert_model_dir(d, "int8", seed=0, out_name="s0", **quiet)
    b = convert_model_dir(d, "int8", seed=3, out_name="s3", **quiet)
    assert (a["seed"], a["split_seed"], b["seed"], b["split_seed"]) == (0, 1, 3, 1)
    assert split_seeds == [1, 1]  # the dataset is read with the training seed, whatever --seed is
    assert json.loads((d / "s3.report.json").read_text())["seed"] == 3
    # another calibration sample gives other activation ranges
    assert (d / "s0.tflite").read_bytes() != (d / "s3.tflite").read_bytes()
