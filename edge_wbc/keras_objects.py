"""Keras layers of edge-wbc's own, and the ``custom_objects`` every loader of a ``.keras`` file passes.

Keras is imported only when :func:`custom_objects` is first called, so importing this module costs
nothing (the runtime never calls it). Each layer uses only ops that full-integer TFLite supports.
"""

from __future__ import annotations

_CACHE: dict = {}


def custom_objects() -> dict:
    """{name: class} of the project's layers (registered with Keras as ``edge_wbc>Name``)."""
    if _CACHE:
        return _CACHE
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="edge_wbc")
    class ImageStandardize(keras.layers.Layer):
        """Each channel of each image to zero mean and unit variance over its pixels.

        A microscope's colour cast, brightness and contrast are removed before the first
        convolution. int8 TFLite: MEAN, SQUARED_DIFFERENCE, RSQRT, MUL, SUB (Keras' LayerNormalization
        lowers to a NEG that has no int8 kernel, so it is not used).

        ``int8_keep_float``: ``convert --mode int8`` keeps this layer in float unless told otherwise.
        In int8 its seven ops take the signal from 52 to 23 dB SQNR (``edge-wbc inspect
        android_assets/wbc_field_int8.tflite``), and on a microscope the model never saw the int8
        model falls 10 pt below its float model (wbc_seg held out: 0.210 vs 0.310); in float it costs
        no size and no measurable time (docs/bench.md, "The real case").
        """

        int8_keep_float = True

        def __init__(self, epsilon: float = 1e-3, **kw):
            super().__init__(**kw)
            self.epsilon = float(epsilon)

        def call(self, x):
            m = ops.mean(x, axis=(1, 2), keepdims=True)
            v = ops.mean(ops.square(x - m), axis=(1, 2), keepdims=True)
            return (x - m) * ops.rsqrt(v + self.epsilon)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    _CACHE["ImageStandardize"] = ImageStandardize
    return _CACHE
