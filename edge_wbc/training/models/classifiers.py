"""Classifier builders: crp3, cnn2, fnn1, binary2, wbcnet, wbcnet_s4, edgenet, tiny (see :mod:`..models`)."""

from __future__ import annotations

from ...errors import SpecError
from ..registry import register_model
from .layers import _cbr, _head, _input, _keras


@register_model("crp3", description="3x (Conv-ReLU-MaxPool), flatten, FC, FC (reference WBC study)")
def crp3(spec, K=None, filters=(32, 64, 128), dense=128):
    K = _keras(K)
    inp, x = _input(K, spec)
    for i, f in enumerate(filters):
        x = K.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = K.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = K.layers.Flatten(name="flatten")(x)
    x = K.layers.Dense(dense, activation="relu", name="fc1")(x)
    return K.Model(inp, _head(K, x, spec), name="crp3")


@register_model("cnn2", description="2 conv layers with dropout, flatten, dense (BloodMNIST CNN baseline)")
def cnn2(spec, K=None):
    K = _keras(K)
    inp, x = _input(K, spec)
    x = K.layers.Conv2D(32, 3, activation="relu", name="conv1")(x)
    x = K.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = K.layers.MaxPooling2D(2, name="pool")(x)
    x = K.layers.Dropout(0.25, name="drop1")(x)
    x = K.layers.Flatten(name="flatten")(x)
    x = K.layers.Dense(128, activation="relu", name="fc1")(x)
    x = K.layers.Dropout(0.5, name="drop2")(x)
    return K.Model(inp, _head(K, x, spec), name="cnn2")


@register_model("fnn1", description="1 hidden layer feedforward baseline")
def fnn1(spec, K=None, hidden=128):
    K = _keras(K)
    inp, x = _input(K, spec)
    x = K.layers.Flatten(name="flatten")(x)
    x = K.layers.Dense(hidden, activation="relu", name="fc1")(x)
    return K.Model(inp, _head(K, x, spec), name="fnn1")


@register_model(
    "binary2", task="binary", description="Conv32-Pool-Conv32-Pool-Dense64-Dense1(sigmoid), any 2-class folder"
)
def binary2(spec, K=None):
    K = _keras(K)
    if spec.num_classes != 2:
        raise SpecError(f"binary2 needs exactly 2 classes, got {spec.num_classes}: {list(spec.labels)}")
    inp, x = _input(K, spec)
    x = K.layers.Conv2D(32, 3, activation="relu", name="conv1")(x)
    x = K.layers.MaxPooling2D(2, name="pool1")(x)
    x = K.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = K.layers.MaxPooling2D(2, name="pool2")(x)
    x = K.layers.Flatten(name="flatten")(x)
    x = K.layers.Dense(64, activation="relu", name="fc1")(x)
    x = K.layers.Dense(1, activation="sigmoid", name="probs")(x)
    return K.Model(inp, x, name="binary2")


def _ibn(K, x, f, name):
    """A variant of IBN-a (Pan et al. 2018, which batch-normalizes the other half only): conv, then
    instance normalization on half the channels and batch normalization on all, ReLU. The
    instance-normalized half carries no per-image contrast or offset (a new microscope's style); the
    other half keeps them. The two halves are two convolutions of
    f / 2 filters (the same as splitting one), and the instance norm is ImageStandardize, which
    int8 conversion keeps in float."""
    from ...keras_objects import custom_objects

    a = K.layers.Conv2D(f // 2, 3, padding="same", use_bias=False, name=f"{name}_conv_in")(x)
    a = custom_objects()["ImageStandardize"](epsilon=1e-3, name=f"{name}_in")(a)
    b = K.layers.Conv2D(f - f // 2, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = K.layers.Concatenate(name=f"{name}_cat")([a, b])
    x = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return K.layers.ReLU(name=f"{name}_relu")(x)


def _wbcnet(K, spec, name, widths, dropout, stem=(), standardize=False, ibn_stages=0):
    """Optional per-image standardization and stride-2 conv-BN-ReLU stem, then stages of 2 conv-BN-ReLU
    (IBN-a blocks in the first ``ibn_stages``) with max-pooling between, GAP."""
    K = _keras(K)
    inp, x = _input(K, spec)
    if standardize:
        # each channel of each image to zero mean and unit variance over its pixels (Keras 3 only)
        from ...keras_objects import custom_objects

        x = custom_objects()["ImageStandardize"](epsilon=1e-3, name="standardize")(x)
    for i, f in enumerate(stem):
        x = _cbr(K, x, f, f"stem{i + 1}", stride=2)
    for s, f in enumerate(widths):
        block = _ibn if s < ibn_stages else _cbr
        x = block(K, x, f, f"s{s + 1}a")
        x = block(K, x, f, f"s{s + 1}b")
        if s < len(widths) - 1:
            x = K.layers.MaxPooling2D(2, name=f"pool{s + 1}")(x)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    x = K.layers.Dropout(dropout, name="drop")(x)
    return K.Model(inp, _head(K, x, spec), name=name)


@register_model("wbcnet", description="small VGG-style BN CNN (3 stages x 2 conv, GAP); the 28 px default")
def wbcnet(spec, K=None, widths=(32, 64, 96), dropout=0.3):
    return _wbcnet(K, spec, "wbcnet", widths, dropout)


@register_model(
    "fieldnet",
    default_size=64,
    description="wbcnet behind per-image standardization: the field classifier (WBC-centred crops, several sources)",
)
def fieldnet(spec, K=None, widths=(32, 64, 96), dropout=0.3):
    return _wbcnet(K, spec, "fieldnet", widths, dropout, standardize=True)


@register_model(
    "fieldnet_ibn",
    default_size=64,
    description="fieldnet with IBN-a blocks (instance norm on half the channels) in its first stage",
)
def fieldnet_ibn(spec, K=None, widths=(32, 64, 96), dropout=0.3, ibn_stages=1):
    return _wbcnet(K, spec, "fieldnet_ibn", widths, dropout, standardize=True, ibn_stages=ibn_stages)


@register_model(
    "wbcnet_s4",
    default_size=128,
    description="wbcnet behind a learned stride-4 stem (2x conv-BN-ReLU, stride 2): 96-128 px inputs at 64 px cost",
)
def wbcnet_s4(spec, K=None, stem=(24, 32), widths=(48, 96, 128), dropout=0.3):
    """Two stride-2 conv-BN-ReLU layers take a 128 px cell to 32x32x32 (a learned downsampling
    instead of a fixed resize), then wbcnet's 3 stages x 2 conv at 32/16/8 px and GAP.
    ~93 MMAC at 128 px; int8-only ops (Conv2D, ReLU, MaxPool, Mean, Dense, Softmax)."""
    return _wbcnet(K, spec, "wbcnet_s4", widths, dropout, stem=stem)


def _inverted_residual(K, x, f_out, expand, stride, name):
    f_in = x.shape[-1]
    h = x
    if expand != 1:
        h = K.layers.Conv2D(f_in * expand, 1, use_bias=False, name=f"{name}_expand")(h)
        h = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_expand_bn")(h)
        h = K.layers.ReLU(6.0, name=f"{name}_expand_relu")(h)
    h = K.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(h)
    h = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(h)
    h = K.layers.ReLU(6.0, name=f"{name}_dw_relu")(h)
    h = K.layers.Conv2D(f_out, 1, use_bias=False, name=f"{name}_project")(h)
    h = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_project_bn")(h)
    if stride == 1 and f_in == f_out:
        h = K.layers.Add(name=f"{name}_add")([x, h])
    return h


@register_model("edgenet", description="inverted-residual ReLU6 net for int8 on small CPUs, any input size")
def edgenet(spec, K=None, width=1.0, dropout=0.2):
    """Inverted-residual blocks; stride-2 stages are added while the feature map is >= 8 px."""
    K = _keras(K)

    def c(f):
        return max(8, int(round(f * width / 8)) * 8)

    inp, x = _input(K, spec)
    size = min(spec.input_height, spec.input_width)
    stem_stride = 2 if size >= 64 else 1
    x = _cbr(K, x, c(32), "stem", stride=stem_stride)
    size //= stem_stride
    # (out channels, expansion, repeats, wants stride 2)
    stages = [(c(16), 1, 1, False), (c(24), 4, 2, True), (c(40), 4, 2, True), (c(80), 4, 3, True), (c(128), 4, 2, True)]
    for si, (f, e, n, down) in enumerate(stages):
        for r in range(n):
            stride = 2 if (down and r == 0 and size >= 8) else 1
            if stride == 2:
                size //= 2
            x = _inverted_residual(K, x, f, e, stride, f"b{si}_{r}")
    x = _cbr(K, x, c(256), "head", k=1)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    x = K.layers.Dropout(dropout, name="drop")(x)
    return K.Model(inp, _head(K, x, spec), name="edgenet")


@register_model("tiny", description="2-conv toy net for tests and smoke runs (not for real use)")
def tiny(spec, K=None):
    K = _keras(K)
    inp, x = _input(K, spec)
    x = _cbr(K, x, 8, "c1", stride=2)
    x = K.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = K.layers.ReLU(6.0, name="dw_relu")(x)
    x = K.layers.Conv2D(16, 1, activation="relu", name="pw")(x)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, _head(K, x, spec), name="tiny")
