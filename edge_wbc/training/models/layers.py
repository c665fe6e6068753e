"""Building blocks shared by the builders: the Keras module, the raw-pixel input with in-graph normalization, heads."""

from __future__ import annotations


def _keras(K):
    if K is None:
        import keras as K  # Keras 3
    return K


def _head(K, x, spec, name="probs"):
    if spec.task == "binary" and spec.num_classes == 2:
        return K.layers.Dense(1, activation="sigmoid", name=name)(x)
    return K.layers.Dense(spec.num_classes, activation="softmax", name=name)(x)


def _input(K, spec):
    inp = K.Input(shape=spec.input_shape, name="pixels")
    x = K.layers.Rescaling(spec.norm_scale, spec.norm_offset, name="normalize")(inp)
    return inp, x


def _cbr(K, x, f, name, k=3, stride=1):
    x = K.layers.Conv2D(f, k, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return K.layers.ReLU(name=f"{name}_relu")(x)
