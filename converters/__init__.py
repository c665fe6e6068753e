"""TFLite converters: one function per quantization mode (needs the `train` extra).

Installed as ``edge_wbc.converters``. ``convert_model_dir(dir, mode)`` is what ``edge-wbc convert``
runs: it loads ``model.keras`` + ``model.json``, calls the mode's function, checks the result
(the interpreter loads it, tensor types are what the mode promises, no float ops in int8 unless
allowed, top-1 agreement with the Keras model on val images) and only then writes
``DIR/<mode>.tflite`` and ``DIR/<mode>.json``.
"""

from .modes import MODES, ConversionError, convert_keras, register_mode
from .pipeline import convert_model_dir, inspect_tflite

__all__ = ["MODES", "register_mode", "convert_keras", "convert_model_dir", "inspect_tflite", "ConversionError"]
