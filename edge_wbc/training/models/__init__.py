"""The registered model builders; importing this package registers them (as timm's models package does).

Every builder takes a :class:`edge_wbc.spec.ModelSpec` and returns a model that takes raw RGB
pixels (0-255, float) and outputs probabilities; normalization is the first layer (Rescaling), so
the converted ``.tflite`` takes raw pixels too. ``K`` selects the Keras implementation: Keras 3 by
default, or ``tf_keras`` when the quantization tools (tfmot) rebuild the same architecture. Only
ops that full-integer TFLite supports are used (Conv2D, DepthwiseConv2D, Dense, ReLU/ReLU6,
MaxPool, AveragePool, Add, Concatenate, Softmax/Logistic).
"""

from . import classifiers, unet  # noqa: F401  (each module registers its builders)

__all__ = ["classifiers", "unet"]
