#!/usr/bin/env python3
"""Find import cycles among the modules of edge_wbc, counting imports inside functions.

Every module of the package is parsed with ``ast`` (nothing is imported); each ``import`` and
``from ... import`` anywhere in it, at module level or inside a function, class or ``if``, gives an
edge to the edge_wbc module it names (``from pkg import name`` counts as an import of the submodule
``pkg.name`` when that is a module, else of ``pkg``). Importing a submodule does not count as
importing its parent package. Exit 0 and say so if the graph has no cycle; else list every cycle
(one per strongly connected component, shortest path around it) and exit 1.

    python scripts/check_imports.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_names(pkg_dir: Path) -> dict[str, Path]:
    root = pkg_dir.parent
    out = {}
    for f in sorted(pkg_dir.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # a name inside a module: the module itself
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in roots:
                    add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] not in roots:
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                add(sub if sub in modules else mod)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    out = []
    for comp in comps:
        members, start = set(comp), comp[0]
        prev, frontier = {start: None}, [start]
        while frontier:  # BFS inside the component back to start
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        path = [v]
                        while prev[path[-1]] is not None:
                            path.append(prev[path[-1]])
                        out.append([start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start])
                        nxt = []
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                else:
                    continue
                break
            frontier = nxt
    return out


def main(argv: list[str]) -> int:
    global roots
    pkg_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "edge_wbc"
    modules = module_names(pkg_dir)
    roots = {pkg_dir.name}
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    found = cycles(graph)
    n_edges = sum(map(len, graph.values()))
    if not found:
        print(f"no import cycles among {len(modules)} modules of {pkg_dir.name} ({n_edges} imports)")
        return 0
    print(f"{len(found)} import cycle(s) among the modules of {pkg_dir.name}:")
    for c in found:
        print("  " + " -> ".join(c))
    return 1


roots: set[str] = set()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
