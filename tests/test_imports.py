"""The package has no import cycles (function-level imports included): scripts/check_imports.py says so."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_imports.py"


def test_edge_wbc_has_no_import_cycle():
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no import cycles" in r.stdout


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("import demo.a\n")
    (pkg / "leaf.py").write_text("from . import a\n")
    r = subprocess.run([sys.executable, str(SCRIPT), str(pkg)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert "demo.a -> demo.sub.b -> demo.c -> demo.a" in r.stdout, r.stdout


def test_the_registry_is_a_leaf():
    import ast

    src = (REPO / "edge_wbc" / "training" / "registry.py").read_text()
    mods = [n.module or "" for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom) and n.level]
    assert mods == ["errors"], mods  # only the errors module, never the builders
