"""TFLite conversion (needs the `train` extra to convert): the mode table, the pipeline and the tfmot worker.

``convert_model_dir(dir, mode)`` is what ``edge-wbc convert`` runs: it loads ``model.keras`` +
``model.json``, converts by the mode's row of :data:`~edge_wbc.converters.modes.MODE_TABLE`, checks
the result (the interpreter loads it, tensor types are what the mode promises, no float ops in an
integer model unless allowed, top-1 agreement with the Keras model on val images) and only then
writes ``DIR/<mode>.tflite`` and ``DIR/<mode>.json``. The mode table itself imports no TensorFlow
and no other part of edge-wbc (``ModelSpec`` reads its mode names), so names load lazily here.
"""

_EXPORTS = {
    "MODE_TABLE": "modes", "CONVERT_MODES": "modes", "ModeInfo": "modes", "Option": "modes", "export_formats": "modes",
    "resolve_options": "modes", "convert_keras": "modes", "ConversionError": "modes",
    "convert_model_dir": "pipeline", "inspect_tflite": "pipeline",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
