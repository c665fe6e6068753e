"""The nucleus detector's numbers (:class:`edge_wbc.runtime.nuclei.NucleusRule`), chosen on val fields,
and how they do leave-one-source-out.

Every field of the three field sources, resampled to the canonical scale with its own red-cell
estimate (the detector's training fields, :func:`edge_wbc.tasks.fieldsets.canonical_fields`), is
scored at IoU >= 0.5 (``benchmarks/count_eval.py``'s matcher) for every rule of a small grid.

- ``shipped``: the rule with the best mean F1 over the **val** fields of BCCD and smartphone_pig (the
  sources the shipped models may learn from), reported on the **test** fields of all three.
- ``loso``: for each source S, the rule with the best mean F1 over the val fields of the other two,
  reported on the test fields of S (and of the others).

    EDGE_WBC_DATA=../shared/data python benchmarks/nuclei_detect.py --json docs/results/nuclei_detect.json

This scores the detector alone, on the cached canonical fields; ``benchmarks/count_eval.py --detector
nuclei`` scores ``edge-wbc count`` end to end (its own scale estimate, timing).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_eval import match  # noqa: E402

from edge_wbc.runtime.nuclei import NucleusRule, component_wbcs, nucleus_components  # noqa: E402
from edge_wbc.tasks.fieldsets import canonical_fields  # noqa: E402

SOURCES = ("bccd", "smartphone_pig", "sigtuple")
SHIPPABLE = ("bccd", "smartphone_pig")
GRID = {"k": (2.0, 2.5, 3.0), "floor": (25.0, 35.0), "open_px": (1, 3), "join_px": (3, 5, 7),
        "min_area_px": (40, 60, 100), "grow": (0.9, 1.0, 1.1, 1.2, 1.3), "square": (True, False)}


def f1(r: float, p: float) -> float:
    return 2 * r * p / (r + p) if r + p else 0.0


def rules():
    keys = list(GRID)
    for vals in itertools.product(*GRID.values()):
        yield NucleusRule(**dict(zip(keys, vals)))


MASK_KEYS = ("k", "floor", "open_px", "join_px")
_COMPS: dict = {}


def components(f, rule):
    """The field's components under ``rule``'s mask numbers (cached: the box numbers do not change them)."""
    key = (f.path, *(getattr(rule, k) for k in MASK_KEYS))
    if key not in _COMPS:
        _COMPS[key] = nucleus_components(f.image, rule)
    return _COMPS[key]


def score(fields, rule) -> dict:
    tp = gt = det = 0
    for f in fields:
        boxes = [b for b, _ in component_wbcs(*components(f, rule), rule)]
        g = [list(x) for x in f.boxes]
        tp += match(g, boxes)
        gt, det = gt + len(g), det + len(boxes)
    r, p = tp / max(gt, 1), tp / max(det, 1)
    return {"fields": len(fields), "gt_wbc": gt, "detected": det, "recall": round(r, 4), "precision": round(p, 4),
            "f1": round(f1(r, p), 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    t0 = time.time()
    F = canonical_fields(SOURCES, a.data, log=print)
    by = {(s, sp): [f for f in F if f.source == s and f.split == sp] for s in SOURCES for sp in ("val", "test")}
    grid = list(rules())
    print(f"{len(grid)} rules x {sum(len(v) for k, v in by.items() if k[1] == 'val')} val fields", flush=True)
    val = {}
    for i, rule in enumerate(grid):
        val[rule] = {s: score(by[(s, "val")], rule) for s in SOURCES}
        if i % 100 == 0:
            print(f"  {i}/{len(grid)} ({time.time() - t0:.0f} s)", flush=True)

    def best(on):
        return max(grid, key=lambda r: (np.mean([val[r][s]["f1"] for s in on]), -abs(r.grow - 1.0)))

    out = {"grid": {k: list(v) for k, v in GRID.items()}, "folds": {}}
    chosen = {"shipped": (best(SHIPPABLE), SHIPPABLE)}
    for s in SOURCES:
        chosen[f"held_out_{s}"] = (best(tuple(x for x in SOURCES if x != s)), tuple(x for x in SOURCES if x != s))
    for name, (rule, on) in chosen.items():
        out["folds"][name] = {"chosen_on_val_of": list(on), "rule": rule.to_dict(),
                              "val": val[rule], "test": {s: score(by[(s, "test")], rule) for s in SOURCES}}
    print("\n| rule chosen on val of | " + " | ".join(f"{s} test R / P" for s in SOURCES) + " |")
    print("|---|" + "---|" * len(SOURCES))
    for name, f in out["folds"].items():
        cells = []
        for s in SOURCES:
            c = f"{f['test'][s]['recall']:.3f} / {f['test'][s]['precision']:.3f}"
            cells.append(f"**{c}**" if name == f"held_out_{s}" else c)
        print(f"| {' + '.join(f['chosen_on_val_of'])} ({name}) | " + " | ".join(cells) + " |")
    for name, f in out["folds"].items():
        print(name, f["rule"])
    default = NucleusRule()
    out["default_rule"] = default.to_dict()
    out["default_is_shipped_choice"] = default == chosen["shipped"][0]
    if not out["default_is_shipped_choice"]:
        print(f"note: NucleusRule() {default} differs from the shipped choice {chosen['shipped'][0]}")
    out["seconds"] = round(time.time() - t0, 1)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
