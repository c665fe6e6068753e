"""Validate the red-cell scale estimator (edge_wbc.tasks.scale) where the truth is known.

1. Rescaled images: each held-out image of a source is resized by known factors (0.4x-2.5x); the
   estimate on the resized copy divided by the estimate on the original should equal 1 / factor.
   Relative error |ratio * factor - 1|, median and p90 per source and factor.
2. Absolute scale per source: the estimate's median µm/px next to the source's reference value,
   with how that reference was found (``REFERENCE``).
3. ``--calibrate``: the half-width constant HALF_FRAC re-fitted on BCCD *train* smears against their
   VOC red-cell boxes (interior boxes only; median box side = the red-cell diameter).

    EDGE_WBC_DATA=../shared/data python benchmarks/scale_eval.py [--n 20] [--json OUT] [--calibrate]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edge_wbc.data import data_root
from edge_wbc.data.segdata import bccd_split_names, voc_boxes
from edge_wbc.tasks import scale as S

FACTORS = (0.4, 0.5, 0.63, 0.8, 1.25, 1.6, 2.0, 2.5)

#: How the reference µm/px of each source is found (7.5 µm red cells where they are measured).
REFERENCE = {
    "bccd": "derived: 7.5 µm / median interior VOC RBC box side of the BCCD test smears",
    "sigtuple": "assumed: none published; reference = the estimate itself (no independent truth)",
    "smartphone_pig": "derived: pig red cells about 6 µm (species, smaller than human); estimate scaled by 6/7.5",
    "wbc_seg": "single-cell crops: too few red cells by design, the estimator must refuse",
    "pbc128": "single-cell crops: too few red cells by design, the estimator must refuse",
}


def bccd_rbc_px(root: Path, n: str) -> float | None:
    bx = [b for b in voc_boxes(root / "BCCD" / "Annotations" / f"{n}.xml", "RBC")
          if b[0] > 2 and b[1] > 2 and b[2] < 638 and b[3] < 478]
    return float(np.median([((b[2] - b[0]) + (b[3] - b[1])) / 2 for b in bx])) if len(bx) >= 3 else None


def sources(root: Path, n: int) -> dict[str, list[Path]]:
    bccd = root / "bccd"
    pig = sorted((root / "smartphone_pig" / "test" / "images").glob("*.jpg"))
    sig = sorted(p for p in (root / "sigtuple" / "Test_data").glob("*.jpg") if not p.stem.endswith("-mask"))
    wbc = sorted((root / "wbc_seg" / "dataset1").glob("*.bmp"))
    pbc = sorted((root / "pbc128" / "test").glob("*/*.jpg"))
    rng = np.random.default_rng(0)

    def pick(xs):
        return [xs[i] for i in sorted(rng.choice(len(xs), min(n, len(xs)), replace=False))] if xs else []

    return {
        "bccd": [bccd / "BCCD" / "JPEGImages" / f"{x}.jpg" for x in bccd_split_names(bccd)["test"]][:n],
        "sigtuple": pick(sig),
        "smartphone_pig": pick(pig),
        "wbc_seg": pick(wbc),
        "pbc128": pick(pbc),
    }


def calibrate(root: Path) -> dict:
    bccd = root / "bccd"
    ratios = []
    for name in bccd_split_names(bccd)["train"]:
        d = bccd_rbc_px(bccd, name)
        e = S.estimate_scale(Image.open(bccd / "BCCD" / "JPEGImages" / f"{name}.jpg").convert("RGB"))
        if d and e.ok:
            ratios.append(e.rbc_px * S.HALF_FRAC / d)
    return {"n": len(ratios), "half_frac": float(np.median(ratios)), "p10": float(np.percentile(ratios, 10)),
            "p90": float(np.percentile(ratios, 90)), "current": S.HALF_FRAC}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20, help="images per source")
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--calibrate", action="store_true")
    a = ap.parse_args()
    root = data_root(a.data)
    res: dict = {"factors": FACTORS}
    if a.calibrate:
        res["calibration"] = calibrate(root)
    per_source = {}
    all_err = []
    for src, paths in sources(root, a.n).items():
        base, errs, ms, refused = [], {f: [] for f in FACTORS}, [], 0
        truth = []
        for p in paths:
            img = Image.open(p).convert("RGB")
            t0 = time.perf_counter()
            e0 = S.estimate_scale(img)
            ms.append((time.perf_counter() - t0) * 1e3)
            if not e0.ok:
                refused += 1
                continue
            base.append(e0)
            if src == "bccd" and (d := bccd_rbc_px(root / "bccd", p.stem)):
                truth.append(e0.rbc_px / d)
            for f in FACTORS:
                size = (round(img.width * f), round(img.height * f))
                e = S.estimate_scale(img.resize(size, Image.Resampling.BICUBIC))
                # the resized copy has um_per_px / f; ratio to the base estimate * f = 1 when exact
                errs[f].append(abs(e.um_per_px * f / e0.um_per_px - 1) if e.ok else 1.0)
        flat = [x for v in errs.values() for x in v]
        all_err += flat if src in ("bccd", "sigtuple", "smartphone_pig") else []
        row = {
            "images": len(paths), "refused": refused, "reference": REFERENCE[src],
            "refusal_share": refused / len(paths) if paths else None,
            "estimate_ms_p50": float(np.percentile(ms, 50)) if ms else None,
        }
        if base:
            um = float(np.median([e.um_per_px for e in base]))
            row.update({
                "um_per_px_median": um, "rbc_px_median": float(np.median([e.rbc_px for e in base])),
                "confidence_median": float(np.median([e.confidence for e in base])),
                "rescale_rel_err_median": float(np.median(flat)), "rescale_rel_err_p90": float(np.percentile(flat, 90)),
                "rescale_rel_err_median_by_factor": {str(f): float(np.median(v)) for f, v in errs.items() if v},
            })
            if src == "smartphone_pig":
                row["um_per_px_pig_corrected"] = um * 6.0 / S.RBC_UM
            if truth:
                row["estimate_over_voc_rbc_box_median"] = float(np.median(truth))
                row["estimate_over_voc_rbc_box_p10_p90"] = [float(np.percentile(truth, 10)),
                                                            float(np.percentile(truth, 90))]
                row["um_per_px_reference"] = S.RBC_UM / float(np.median(
                    [bccd_rbc_px(root / "bccd", p.stem) for p in paths if bccd_rbc_px(root / "bccd", p.stem)]))
        per_source[src] = row
    res["sources"] = per_source
    res["rescale_rel_err_median_fields"] = float(np.median(all_err)) if all_err else None
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
