"""Training: a registry of model builders and a training entry point (needs the `train` extra).

Installed as ``edge_wbc.training`` (the folder sits at the repository top, mapped by setuptools).
"""

from .registry import MODELS, build_model, get_model, list_models, register_model

__all__ = ["MODELS", "register_model", "get_model", "build_model", "list_models"]
