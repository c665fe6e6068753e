"""edge-wbc: white-blood-cell microscope models from training to the device.

Data flows through the subpackages in this order: ``data`` (catalog, loaders) -> ``training`` ->
``converters`` (the mode table) -> ``runtime`` (interpreter, classifier, segmenter) -> ``tasks``
(classify, segment, count, calibrate) -> ``bench``, ``export`` -> ``cli``; ``metrics``, ``spec``,
``preprocess``, ``defaults``, ``fileio`` and ``errors`` are shared by all. Everything but training,
conversion and the Keras reference row of ``edge-wbc bench`` needs only NumPy, Pillow and a TFLite
interpreter; TensorFlow is imported lazily, where it is needed.
"""

from .errors import DataError, EdgeWBCError, ImageError, ModelError, SpecError
from .spec import ModelSpec

__version__ = "0.1.0"

__all__ = ["ModelSpec", "EdgeWBCError", "DataError", "ImageError", "ModelError", "SpecError", "TFLiteClassifier",
           "TFLiteSegmenter", "__version__"]


def __getattr__(name):  # lazy: importing the runtime pulls in the interpreter only when used
    if name in ("TFLiteClassifier", "TFLiteSegmenter"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'edge_wbc' has no attribute {name!r}")
