"""Training: the model registry, the builders and the two trainers (needs the `train` extra to train).

``edge_wbc.training.registry`` is a leaf; importing this package also imports
``edge_wbc.training.models``, which registers every builder. Neither needs TensorFlow.
"""

from . import models  # noqa: F401  (registers the builders)
from .registry import MODELS, build_model, get_model, list_models, register_model

__all__ = ["MODELS", "register_model", "get_model", "build_model", "list_models"]
