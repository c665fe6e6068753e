"""Params and MACs counted from a model's graph (TFLite ops, or Keras layers)."""

from __future__ import annotations

import numpy as np


def tflite_params_macs(interpreter) -> tuple[int, int]:
    """(params, MACs) for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV at batch 1.

    Params are the weight and bias tensors of those ops (the model's trainable weights after
    BatchNorm folding); MACs are multiply-accumulates of the same ops.
    """
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def shape(i):
        return [int(v) for v in tensors[i]["shape"]] if i in tensors else []

    params = macs = 0
    for op in interpreter._get_ops_details():
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            continue
        w_i = ins[1]
        w = shape(w_i)
        b = shape(ins[2]) if len(ins) > 2 and ins[2] >= 0 else []
        params += int(np.prod(w)) + (int(np.prod(b)) if b else 0)
        out = shape(outs[0])
        if not w or not out:
            continue
        if name == "CONV_2D":  # w: [out_c, kh, kw, in_c]
            macs += int(np.prod(out[1:])) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # w: [1, kh, kw, out_c]
            macs += int(np.prod(out[1:])) * w[1] * w[2]
        elif name == "FULLY_CONNECTED":  # w: [units, in]
            macs += int(np.prod(out[1:])) * w[1]
        elif name == "TRANSPOSE_CONV":  # w: [out_c, kh, kw, in_c]; input is ins[2]
            inp = shape(ins[2])
            macs += int(np.prod(inp[1:])) * w[0] * w[1] * w[2]
    return params, macs


def keras_macs(model) -> int:
    """MACs of Conv2D / DepthwiseConv2D / Dense / Conv2DTranspose layers at batch 1."""
    macs = 0
    for layer in model.layers:
        cls = type(layer).__name__
        try:
            out = [int(v) for v in layer.output.shape[1:]]
            inp = [int(v) for v in layer.input.shape[1:]]
        except Exception:
            continue
        if cls == "Conv2D":
            kh, kw = layer.kernel_size
            macs += int(np.prod(out)) * kh * kw * inp[-1] // max(1, getattr(layer, "groups", 1))
        elif cls == "DepthwiseConv2D":
            kh, kw = layer.kernel_size
            macs += int(np.prod(out)) * kh * kw
        elif cls == "Dense":
            macs += int(np.prod(out)) * inp[-1]
        elif cls == "Conv2DTranspose":
            kh, kw = layer.kernel_size
            macs += int(np.prod(inp)) * kh * kw * out[-1]
    return macs
