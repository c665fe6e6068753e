"""Build edge_wbc/samples/ (the embedded sample) from TEST splits of redistributable datasets.

    python scripts/make_sample.py [--data DIR] [--per-class 40]

Only three sources, each under a license that allows redistribution with credit:
  * PBC (Acevedo et al. 2020), CC BY 4.0: pbc128/test/<class>/*.jpg (40 per class, copied as is) and
    BloodMNIST (MedMNIST v2, CC BY 4.0, made from PBC): 40 per class of its official test split;
  * BCCD (Shenggan), MIT: a few smears of BCCD/ImageSets/Main/test.txt with their VOC boxes;
  * smartphone_pig (Alipo-on et al.), CC0 1.0: a few fields of its test/ split with YOLO boxes.
Nothing from wbc_seg, SigTuple or ALL-IDB2. Every image comes from a test split. The picks are
seeded (``random.Random(0)``), so a rerun on the same data writes the same files; MANIFEST.json lists
each file with its sha256, source, license and credit, and edge-wbc refuses a sample that differs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "edge_wbc" / "samples"
OUT = SAMPLES
LIMIT_BYTES = 3_000_000

# (name, license, full credit, short credit for each file of the manifest)
PBC = ("PBC", "CC BY 4.0", "Acevedo A, Merino A, Alferez S, Molina A, Boldu L, Rodellar J. A dataset of microscopic "
       "peripheral blood cell images for development of automatic recognition systems. Data in Brief 30:105474 "
       "(2020), doi:10.1016/j.dib.2020.105474; https://data.mendeley.com/datasets/snkd93bnjr/1",
       "Acevedo et al. 2020 (PBC), CC BY 4.0")
BLOODMNIST = ("BloodMNIST (MedMNIST v2), made from PBC", "CC BY 4.0",
              "Yang J et al. MedMNIST v2. Scientific Data 10:41 (2023), doi:10.1038/s41597-022-01721-8; "
              "images: " + PBC[2], "Yang et al. 2023 (MedMNIST v2); Acevedo et al. 2020 (PBC), CC BY 4.0")
BCCD = ("BCCD", "MIT", "BCCD Dataset, Copyright (c) 2017 Shenggan; https://github.com/Shenggan/BCCD_Dataset "
        "(MIT License)", "Shenggan 2017 (BCCD), MIT")
PIG = ("smartphone_pig", "CC0 1.0", "Alipo-on JR, Escobar FI et al. Dataset for Detection of White Blood Cells of the "
       "Juvenile Visayan Warty Pig in Blood Smear Images (CC0 1.0)", "Alipo-on et al. (smartphone_pig), CC0 1.0")

BCCD_SMEARS = 4
PIG_FIELDS = 3


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("EDGE_WBC_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--out", default=str(SAMPLES), help="Where to write (default edge_wbc/samples).")
    a = ap.parse_args()
    data = Path(a.data)
    global OUT
    OUT = Path(a.out)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    files: list[dict] = []

    def add(dest: str, src: str, who: tuple[str, str, str, str]) -> None:
        """``src``: the path under the data root it was copied from (or made from)."""
        p = OUT / dest
        files.append({"file": dest, "sha256": sha256(p), "bytes": p.stat().st_size, "source": src,
                      "license": who[1], "credit": who[3]})

    # PBC 128 px test cells, copied byte for byte.
    for cdir in sorted((data / "pbc128" / "test").iterdir()):
        pick = sorted(random.Random(0).sample(sorted(f.name for f in cdir.glob("*.jpg")), a.per_class))
        (OUT / "pbc128" / "test" / cdir.name).mkdir(parents=True)
        for f in pick:
            shutil.copyfile(cdir / f, OUT / "pbc128" / "test" / cdir.name / f)
            add(f"pbc128/test/{cdir.name}/{f}", f"pbc128/test/{cdir.name}/{f}", PBC)

    # BloodMNIST test rows (the 28 px images the shipped bloodmnist models read); train/val empty.
    z = np.load(data / "bloodmnist" / "bloodmnist.npz")
    x, y = z["test_images"], z["test_labels"].reshape(-1)
    rng = random.Random(0)
    idx = sorted(i for c in range(8) for i in rng.sample(np.flatnonzero(y == c).tolist(), a.per_class))
    arrays = {"test_images": x[idx], "test_labels": y[idx, None].astype(z["test_labels"].dtype),
              "test_index": np.array(idx, np.int64)}
    for s in ("train", "val"):
        arrays[f"{s}_images"] = np.zeros((0, 28, 28, 3), np.uint8)
        arrays[f"{s}_labels"] = np.zeros((0, 1), z["test_labels"].dtype)
    (OUT / "bloodmnist").mkdir()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (OUT / "bloodmnist" / "bloodmnist.npz").write_bytes(buf.getvalue())
    add("bloodmnist/bloodmnist.npz", "bloodmnist/bloodmnist.npz (test rows at test_index)", BLOODMNIST)

    # BCCD test smears with their VOC boxes.
    b = data / "bccd" / "BCCD"
    test = [ln.strip() for ln in (b / "ImageSets" / "Main" / "test.txt").read_text().split() if ln.strip()]
    smears = sorted(random.Random(0).sample(test, BCCD_SMEARS))
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (OUT / "bccd" / "BCCD" / sub).mkdir(parents=True)
    for s in smears:
        for sub, ext in (("JPEGImages", ".jpg"), ("Annotations", ".xml")):
            shutil.copyfile(b / sub / f"{s}{ext}", OUT / "bccd" / "BCCD" / sub / f"{s}{ext}")
            add(f"bccd/BCCD/{sub}/{s}{ext}", f"bccd/BCCD/{sub}/{s}{ext}", BCCD)
    (OUT / "bccd" / "BCCD" / "ImageSets" / "Main" / "test.txt").write_text("\n".join(smears) + "\n")
    add("bccd/BCCD/ImageSets/Main/test.txt", "bccd/BCCD/ImageSets/Main/test.txt (the picked smears)", BCCD)
    shutil.copyfile(data / "bccd" / "LICENSE", OUT / "bccd" / "LICENSE")
    add("bccd/LICENSE", "bccd/LICENSE", BCCD)

    # smartphone_pig test fields with their YOLO boxes.
    pg = data / "smartphone_pig" / "test"
    fields = sorted(random.Random(0).sample(sorted(f.stem for f in (pg / "images").glob("*.jpg")), PIG_FIELDS))
    for sub in ("images", "labels"):
        (OUT / "smartphone_pig" / "test" / sub).mkdir(parents=True)
    for f in fields:
        for sub, ext in (("images", ".jpg"), ("labels", ".txt")):
            shutil.copyfile(pg / sub / f"{f}{ext}", OUT / "smartphone_pig" / "test" / sub / f"{f}{ext}")
            add(f"smartphone_pig/test/{sub}/{f}{ext}", f"smartphone_pig/test/{sub}/{f}{ext}", PIG)
    for name in ("LICENSE", "CITATION.cff"):
        shutil.copyfile(data / "smartphone_pig" / name, OUT / "smartphone_pig" / name)
        add(f"smartphone_pig/{name}", f"smartphone_pig/{name}", PIG)

    sets = {
        "bloodmnist": {"path": "bloodmnist/bloodmnist.npz", "split": "test", "n": len(idx),
                       "per_class": a.per_class,
                       "source": "BloodMNIST (MedMNIST v2) official test split, 28 px, made from PBC",
                       "license": BLOODMNIST[1], "credit": BLOODMNIST[2]},
        "pbc128": {"path": "pbc128", "split": "test", "n": 8 * a.per_class, "per_class": a.per_class,
                   "source": PBC[0] + " test split (128 px, BloodMNIST's split)", "license": PBC[1], "credit": PBC[2]},
        "bccd_smear": {"path": "bccd/BCCD/JPEGImages", "split": "test", "n": len(smears),
                       "source": BCCD[0] + " test smears (640x480) with VOC boxes", "license": BCCD[1],
                       "credit": BCCD[2]},
        "smartphone_pig": {"path": "smartphone_pig/test/images", "split": "test", "n": len(fields),
                           "source": PIG[0] + " test fields (416x416, smartphone through the eyepiece) with YOLO boxes",
                           "license": PIG[1], "credit": PIG[2]},
    }
    total = sum(f["bytes"] for f in files)
    manifest = {"about": "edge-wbc embedded sample: test-split images of redistributable datasets; see CREDITS.md",
                "made_by": "scripts/make_sample.py", "total_bytes": total, "sets": sets, "files": files}
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    credits = ["# The embedded sample: sources, licenses, credit", "",
               "Every file here is listed in `MANIFEST.json` with its sha256, source and license. All images come "
               "from TEST splits only. `edge-wbc data sample --out DIR` copies this folder out.", ""]
    for name, s in sets.items():
        credits += [f"## {name}: {s['n']} images", "", f"- what: {s['source']}", f"- license: {s['license']}",
                    f"- credit: {s['credit']}", ""]
    credits += ["The sample holds nothing from wbc_seg, SigTuple or ALL-IDB2.", ""]
    (OUT / "CREDITS.md").write_text("\n".join(credits))
    grand = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(files)} files, {total:,} bytes listed; folder {grand:,} bytes")
    if grand > LIMIT_BYTES:
        raise SystemExit(f"sample is {grand:,} bytes, over the {LIMIT_BYTES:,} byte limit")


if __name__ == "__main__":
    main()
