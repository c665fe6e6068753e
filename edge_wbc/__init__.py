"""edge-wbc: white-blood-cell microscope models from training to the device.

The runtime (this package, minus ``edge_wbc.training`` and ``edge_wbc.converters``) needs only
NumPy, Pillow and a TFLite interpreter; TensorFlow is imported lazily, by training, conversion and
the Keras reference row of ``edge-wbc bench``.
"""

from .errors import DataError, EdgeWBCError, ImageError, ModelError, SpecError
from .spec import ModelSpec

__version__ = "0.1.0"

__all__ = ["ModelSpec", "EdgeWBCError", "DataError", "ImageError", "ModelError", "SpecError", "TFLiteClassifier", "__version__"]


def __getattr__(name):  # lazy: importing the runtime pulls in the interpreter only when used
    if name == "TFLiteClassifier":
        from .runtime import TFLiteClassifier

        return TFLiteClassifier
    raise AttributeError(f"module 'edge_wbc' has no attribute {name!r}")
