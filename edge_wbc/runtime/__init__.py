"""The on-device runtime (no TensorFlow): interpreter selection, the model wrapper, classifier, segmenter.

``TFLiteClassifier(path).predict(images)`` gives class probabilities; ``TFLiteSegmenter(path)``
gives probability maps. Outputs become probabilities through :mod:`edge_wbc.runtime.probs`.
"""

from .classifier import TFLiteClassifier, iter_predictions
from .interpreter import BACKENDS, check_tflite_file, interpreter_backend, probe_model
from .model import TFLiteModel, read_labels
from .probs import class_probs, keras_probs
from .rule import UNCERTAIN, UncertainRule, apply_temperature, read_rule, write_rule
from .segmenter import TFLiteSegmenter

__all__ = [
    "TFLiteModel", "TFLiteClassifier", "TFLiteSegmenter", "iter_predictions", "interpreter_backend", "BACKENDS",
    "check_tflite_file", "probe_model", "read_labels", "class_probs", "keras_probs", "UncertainRule", "read_rule",
    "write_rule", "apply_temperature", "UNCERTAIN",
]
