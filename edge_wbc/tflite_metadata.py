"""Alias of :mod:`edge_wbc.export.tflite_metadata`, kept because the shipped android_assets/README.md
(frozen byte for byte with the bundle) documents ``edge_wbc.tflite_metadata.read_labels``."""

from .export.tflite_metadata import *  # noqa: F403
from .export.tflite_metadata import read_labels, read_metadata  # noqa: F401
