"""Default thresholds are defined once, in edge_wbc.defaults, and every user reads them from there."""

import ast
from pathlib import Path

import edge_wbc
from edge_wbc import defaults

PKG = Path(edge_wbc.__file__).parent
NAMES = {n for n in vars(defaults) if n.isupper()}


def test_no_module_but_defaults_assigns_a_default():
    assigned = []
    for f in PKG.rglob("*.py"):
        if f.name == "defaults.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                assigned += [
                    f"{f.relative_to(PKG)}: {t.id}" for t in targets if isinstance(t, ast.Name) and t.id in NAMES
                ]
    assert not assigned, assigned


def test_cli_and_runtime_share_the_speck_floor():
    import inspect

    from edge_wbc.cli.segment import segment
    from edge_wbc.tasks.segment import segment_maps

    cli_default = inspect.signature(segment).parameters["min_area_frac"].default.default
    assert cli_default is defaults.SPECK_FRAC
    assert inspect.signature(segment_maps).parameters["min_area_frac"].default is defaults.SPECK_FRAC
