"""``edge-wbc bench``: every variant on real images, each in its own process.

:mod:`~edge_wbc.bench.runner` runs the variants (through :mod:`~edge_wbc.bench.worker`, one
subprocess per variant and thread count), :mod:`~edge_wbc.bench.report` turns the report into gates,
a comparison, tables, CSV, Markdown and a plot, and :mod:`~edge_wbc.bench.roofline` measures this
CPU's conv roof. Names are loaded lazily, so that a worker process imports only what it runs.
"""

_EXPORTS = {
    "BenchConfig": "runner", "discover": "runner", "machine_info": "runner", "run_bench": "runner",
    "ROW_KEYS": "report", "P50_NOISE": "report", "check_gates": "report", "compare": "report",
    "table_rows": "report", "to_csv": "report", "to_markdown": "report", "plot": "report",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
