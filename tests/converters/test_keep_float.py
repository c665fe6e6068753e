"""convert --mode int8 --keep-float LAYER: selective quantization by Keras layer name."""

import pytest

from edge_wbc.converters.modes import ConversionError, keep_float_nodes, layer_of, resolve_options

NAMES = ["wbcnet_1/s1a_relu_1/Relu;wbcnet_1/s1a_bn_1/batchnorm/add_1", "wbcnet_1/s3a_relu_1/Relu;x",
         "wbcnet_1/gap_1/Mean", "wbcnet_1/probs_1/MatMul;wbcnet_1/probs_1/BiasAdd", "StatefulPartitionedCall_1:0"]


def test_layer_names_and_nodes():
    assert layer_of(NAMES[0]) == "s1a_relu" and layer_of(NAMES[3]) == "probs"
    assert keep_float_nodes("s3a_relu, probs", NAMES) == [NAMES[1], NAMES[3]]


def test_unknown_layer_lists_the_nearest():
    with pytest.raises(ConversionError, match=r"--keep-float 's3a_rel': no such layer in the model; nearest: "
                                              r"s3a_relu, s1a_relu.*\(all: s1a_relu, s3a_relu, gap, probs\)"):
        keep_float_nodes("s3a_rel", NAMES)


def test_only_int8_takes_it():
    assert resolve_options("int8", {"keep_float": "gap"})["keep_float"] == "gap"
    with pytest.raises(ConversionError, match="--keep-float does not apply to --mode float16: it applies to int8"):
        resolve_options("float16", {"keep_float": "gap"})


def test_keep_float_converts_that_layer_only(tiny_model_dir, data_root):
    from edge_wbc.converters import convert_model_dir
    from edge_wbc.converters.pipeline import inspect_tflite

    model = __import__("keras").saving.load_model(tiny_model_dir / "model.keras", compile=False)
    conv = [la.name for la in model.layers if la.__class__.__name__ == "Conv2D"]
    r = convert_model_dir(tiny_model_dir, "int8", data=data_root, calib=50, allow_chance=True, min_agreement=0.0,
                          out_name="int8_keep", keep_float=conv[-1], log=lambda s: None)
    info = inspect_tflite((tiny_model_dir / "int8_keep.tflite").read_bytes())
    assert info["input_dtype"] == info["output_dtype"] == "uint8"
    kept = [o.split("#")[0] for o in info["float_ops"]]
    assert kept.count("CONV_2D") == 1 and "DEQUANTIZE" in kept and "QUANTIZE" in kept
    assert r["keep_float"] == conv[-1] and r["agreement"] >= 0.0
    with pytest.raises(ConversionError, match="no such layer in the model; nearest"):
        convert_model_dir(tiny_model_dir, "int8", data=data_root, calib=50, allow_chance=True, min_agreement=0.0,
                          out_name="int8_bad", keep_float="no_such_layer", log=lambda s: None)
    assert not (tiny_model_dir / "int8_bad.tflite").exists()


def test_a_field_model_keeps_its_standardization_in_float_unless_told_none(bloodmnist):
    from edge_wbc.converters.modes import convert_keras, default_keep_float
    from edge_wbc.converters.pipeline import verify
    from edge_wbc.spec import ModelSpec
    from edge_wbc.training import build_model

    spec = ModelSpec("classification", 28, 28, tuple("abcdefgh"))
    model = build_model("fieldnet", spec)
    assert default_keep_float(model) == "standardize" and default_keep_float(build_model("wbcnet", spec)) is None
    calib = bloodmnist.split("train").images[:16]
    quantized = convert_keras(model, spec, "int8", calib_images=calib, io="uint8", keep_float="none")
    assert verify(quantized, "int8", {"io": "uint8", "keep_float": "none"})["float_ops"] == []
    # the default (standardize in float, the rest int8) is checked by test_convert's registry x modes matrix
