"""How many probes (inputs that are not a single stained WBC) the default classifier leaves uncertain,
and how many real test cells it flags. Writes a JSON; the probe images live in a temp dir.

    python benchmarks/probes.py --json docs/results/probes.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import tempfile
from pathlib import Path

from edge_wbc.assets import default_classifier, resolve_model
from edge_wbc.data.fields import field_list
from edge_wbc.data.roots import data_root
from edge_wbc.runtime import TFLiteClassifier
from edge_wbc.tasks.classify import classify_to_csv
from edge_wbc.tasks.probes import write_probes


def rows(clf, paths):
    buf = io.StringIO()
    classify_to_csv(clf, paths, buf)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--cells", type=int, default=20, help="real cells degraded per kind")
    ap.add_argument("--clean", type=int, default=500, help="real PBC test cells checked for false flags")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    clf = TFLiteClassifier(resolve_model(a.model) if a.model else default_classifier())
    root = data_root()
    rnd = random.Random(0)
    # the model's five classes only: PBC's ig, erythroblast and platelet folders are cells it does not know
    from edge_wbc.data.cells import VOCAB

    pbc = sorted(p for p in (root / "pbc128" / "test").glob("*/*.jpg") if p.parent.name in VOCAB)
    cells = rnd.sample(sorted((root / "bccd" / "BCCD_cropped").glob("*/*.jpg")), a.cells // 2) + rnd.sample(
        pbc, a.cells // 2
    )
    # whole fields: BCCD smears with two or more WBCs, and smartphone fields. A BCCD smear of one WBC is
    # not a probe: its view is a single-cell frame's (20-60 µm across) and classify answers its WBC by
    # design (benchmarks/large_images.py); until session 18 the first 10 BCCD smears were taken, one-WBC or not
    bccd = sorted((f for f in field_list(root, ("bccd",)) if len(f.boxes) >= 2), key=lambda f: f.path.name)
    fields = [f.path for f in bccd[:10]] + sorted((root / "smartphone_pig" / "test" / "images").glob("*.jpg"))[:10]
    out = {"model": str(clf.path)}
    with tempfile.TemporaryDirectory() as d:
        kinds = write_probes(d, cells, fields)
        per = {}
        for k, ps in kinds.items():
            r = rows(clf, ps)
            per[k] = {
                "n": len(r),
                "uncertain": sum(x["prediction"] == "uncertain" for x in r),
                "flags": sorted({f for x in r for f in x["flag"].split("|") if f}),
            }
        out["probes"] = per
        n = sum(v["n"] for v in per.values())
        out["probes_flagged"] = sum(v["uncertain"] for v in per.values()) / n
        out["probes_n"] = n
    clean = {}
    for name, files in (
        ("pbc128", rnd.sample(pbc, a.clean)),
        ("bccd", sorted((root / "bccd" / "BCCD_cropped").glob("*/*.jpg"))),
        ("wbcseg", sorted((root / "wbc_seg" / "dataset1").glob("*.bmp"))),
    ):
        r = rows(clf, files)
        q = [x for x in r if x["flag"] and x["flag"] != "low_confidence"]
        clean[name] = {
            "n": len(r),
            "uncertain": sum(x["prediction"] == "uncertain" for x in r),
            "quality_or_finder_flagged": len(q),
            "flag_counts": {
                f: sum(f in x["flag"].split("|") for x in r)
                for f in sorted({f for x in r for f in x["flag"].split("|") if f})
            },
        }
    out["real_cells"] = clean
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
