"""Write the mutmut 3 results in ./mutants/ as docs/results/mutation_report.{json,md}.

Score = (killed + timeout) / (all mutants - skipped), mutmut's own count (as `mutmut badge`); a mutant
that no selected test reaches ("no tests") counts as not killed. Survivors are listed with their diff and
the reason it is equivalent or harmless, from scripts/mutation_why.toml:

    [shared]                       # reasons used by many mutants
    float64 = "equivalent: ..."
    [mutants]
    "edge_wbc.x.y__mutmut_3" = "harmless: ..."   # or "@float64" for a shared one

Each reason starts with "equivalent:" (no input the function can receive behaves differently) or
"harmless:" (a difference no caller can observe, e.g. a warning's wording, Windows-only newlines).
A survivor without a reason is "not yet classified"; ``--strict`` then exits 1.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def core_patterns() -> list[str]:
    lines = (REPO / "scripts" / "mutation_core.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _results() -> dict[str, dict[str, str]]:
    """{module path: {mutant name: status}} of the core mutants, from the mutants/*.meta files."""
    from fnmatch import fnmatch

    from mutmut.stats import status_by_exit_code

    core = core_patterns()

    out: dict[str, dict[str, str]] = {}
    for meta in sorted((REPO / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        rel = str(meta.relative_to(REPO / "mutants"))[: -len(".meta")]
        codes = {k: v for k, v in data.get("exit_code_by_key", {}).items() if any(fnmatch(k, p) for p in core)}
        if codes:
            out[rel] = {k: status_by_exit_code[v] for k, v in codes.items()}
    return out


_FUNCS: dict[str, dict[str, str]] = {}


def _functions(module_path: str) -> dict[str, str]:
    """Source of every function (methods too) in mutmut's copy of ``module_path``, by name."""
    if module_path not in _FUNCS:
        src = (REPO / "mutants" / module_path).read_text(encoding="utf-8")
        lines = src.splitlines()
        _FUNCS[module_path] = {n.name: "\n".join(lines[n.lineno - 1 : n.end_lineno]) for n in ast.walk(ast.parse(src))
                               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return _FUNCS[module_path]


def _diff(name: str, module_path: str) -> str:
    """The changed lines of a mutant against the original function (as `mutmut show`, without its start-up).

    Functions are looked up by mutmut's mangled name (``x_f__mutmut_3``, ``xǁClassǁmethod__mutmut_3``); the
    ``def`` line is compared too (a mutated default argument), with the mutant's name put back to the original's.
    """
    func = name.rsplit(".", 1)[-1]
    base, _, _num = func.rpartition("__mutmut_")
    funcs = _functions(module_path)
    orig, mut = funcs.get(f"{base}__mutmut_orig", ""), funcs.get(func, "")
    if not mut:
        return "(mutant not found in ./mutants/: re-run mutmut)"
    mut = mut.replace(f"def {func}(", f"def {base}__mutmut_orig(", 1)
    lines = difflib.unified_diff(orig.splitlines(), mut.splitlines(), lineterm="", n=0)
    return "\n".join(ln for ln in lines if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---")))


WHY = REPO / "scripts" / "mutation_why.toml"
KINDS = ("equivalent", "harmless")


def _reasons() -> dict[str, str]:
    """{mutant name: reason} from scripts/mutation_why.toml, shared reasons resolved."""
    if not WHY.is_file():
        return {}
    d = tomllib.loads(WHY.read_text(encoding="utf-8"))
    shared = d.get("shared", {})
    out = {}
    for name, why in d.get("mutants", {}).items():
        if why.startswith("@"):
            if why[1:] not in shared:
                raise SystemExit(f"{WHY.name}: {name}: no shared reason {why!r} (shared: {', '.join(shared)})")
            why = shared[why[1:]]
        if why.split(":", 1)[0] not in KINDS:
            raise SystemExit(f"{WHY.name}: {name}: a reason starts with one of {', '.join(KINDS)}, got {why[:40]!r}")
        out[name] = why
    return out


def score(counts: Counter) -> float:
    tested = sum(counts.values()) - counts["skipped"]
    return (counts["killed"] + counts["timeout"]) / tested if tested else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/results/mutation_report")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a survivor has no reason")
    ap.add_argument("--list-unkilled", action="store_true",
                    help="only print the names of the core mutants not killed (survived, no tests, not checked)")
    args = ap.parse_args()
    res = _results()
    if args.list_unkilled:
        done = ("killed", "timeout", "skipped")
        print("\n".join(n for muts in res.values() for n, st in muts.items() if st not in done))
        return 0
    if not res:
        print("no mutmut results under ./mutants/: run `bash scripts/mutation.sh` first", file=sys.stderr)
        return 1
    reasons = _reasons()
    total: Counter = Counter()
    modules = {}
    survivors = []
    for path, muts in res.items():
        c = Counter(muts.values())
        total += c
        modules[path] = {"score": score(c), **dict(sorted(c.items()))}
        for name, st in muts.items():
            if st not in ("killed", "timeout", "skipped"):
                survivors.append({"mutant": name, "module": path, "status": st, "diff": _diff(name, path),
                                  "why": reasons.get(name, "")})
    kinds = Counter(s["why"].split(":", 1)[0] if s["why"] else "not yet classified" for s in survivors)
    stale = sorted(set(reasons) - {s["mutant"] for s in survivors})  # reasons of mutants killed since
    rep = {"tool": "mutmut", "score": score(total), "counts": dict(sorted(total.items())), "modules": modules,
           "classified": {k: kinds.get(k, 0) for k in (*KINDS, "not yet classified")}, "survivors": survivors}
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    md = ["# Mutation testing report (mutmut)", "",
          "Written by `bash scripts/mutation.sh` (configuration: `[tool.mutmut]` in pyproject.toml; the core "
          "functions: `scripts/mutation_core.txt`).", "",
          f"**Score: {100 * rep['score']:.1f} %** = (killed + timeout) / (all - skipped) = "
          f"({total['killed']} + {total['timeout']}) / ({sum(total.values())} - {total['skipped']}); "
          "a mutant no selected test reaches counts as not killed.", "",
          "| module | mutants | killed | timeout | survived | no tests | not checked | score |",
          "|---|---|---|---|---|---|---|---|"]
    for path, m in modules.items():
        n = sum(v for k, v in m.items() if k != "score")
        md.append(f"| `{path}` | {n} | {m.get('killed', 0)} | {m.get('timeout', 0)} | {m.get('survived', 0)} | "
                  f"{m.get('no tests', 0)} | {m.get('not checked', 0)} | {100 * m['score']:.1f} % |")
    c = rep["classified"]
    md += ["", f"## Surviving mutants ({len(survivors)}): {c['equivalent']} equivalent, {c['harmless']} harmless, "
           f"{c['not yet classified']} not yet classified", "",
           "Each survivor's reason is kept in `scripts/mutation_why.toml`: *equivalent* = no input the function can "
           "receive behaves differently; *harmless* = a difference no caller or user can observe.", ""]
    for s in survivors:
        md += [f"### `{s['mutant']}` ({s['status']})", "", "```diff", s["diff"], "```", "",
               f"Why: {s['why'] or '(not yet classified)'}", ""]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"mutation score {100 * rep['score']:.1f} % ({dict(total)}); {len(survivors)} survivors "
          f"({dict(kinds)}) -> {out.with_suffix('.md')}")
    if stale:
        print(f"{len(stale)} reasons in {WHY.name} are for mutants that no longer survive (killed or gone): "
              + ", ".join(stale[:5]) + (" ..." if len(stale) > 5 else ""))
    return 1 if args.strict and kinds.get("not yet classified") else 0


if __name__ == "__main__":
    raise SystemExit(main())
