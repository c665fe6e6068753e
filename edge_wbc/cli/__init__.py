"""The ``edge-wbc`` command line (Typer): one small module per command, one error handler, shared renderers.

Adding a command: write ``edge_wbc/cli/<name>.py`` that does ``from .app import app`` and defines
``@app.command()`` (parse the arguments, call one library function, hand its result to a renderer in
:mod:`edge_wbc.cli.render`), then import it below. Raise :class:`~edge_wbc.errors.EdgeWBCError`
for anything the user must fix; :class:`~edge_wbc.cli.app.ErrorHandlingGroup` reports it (exit 2).
Training and conversion import TensorFlow lazily, inside their commands.
"""

# registration order is the order of `edge-wbc --help`
from . import bench, calibrate, classify, convert, count, data, export, field, inspect, models, segment, train  # noqa: E402, I001
from .app import app, data_app, main

app.add_typer(data_app, name="data")

__all__ = ["app", "main", "train", "convert", "models", "classify", "bench", "segment", "count", "calibrate", "export",
           "data", "field", "inspect"]
