"""Build the 100-image PBC parity set: 20 test JPEGs per class for basophil, eosinophil, lymphocyte,
monocyte and neutrophil (the first 20 by file name in pbc128/test), as a folder dataset for
``edge-wbc bench --dataset DIR``.

    python scripts/pbc100_tree.py /tmp/pbc100      # symlinks into $EDGE_WBC_DATA/pbc128, nothing copied
    python scripts/pbc100_tree.py /tmp/pbc5 all    # every test JPEG of the five classes (2,061)

test/ holds the 100 images; train/ and val/ hold one image per class of all 8 BloodMNIST classes, only
so that the folder dataset has the shipped models' label set (the bench uses --split test).
"""

import os
import sys
from pathlib import Path

CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
ALL = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")


def main(out: str, per_class: int | None = 20) -> None:
    src = Path(os.environ.get("EDGE_WBC_DATA", "../shared/data")) / "pbc128"
    root = Path(out)
    for c in ALL:
        files = sorted((src / "test" / c).glob("*.jpg"))
        plan = {"train": sorted((src / "train" / c).glob("*.jpg"))[:1],
                "val": sorted((src / "val" / c).glob("*.jpg"))[:1], "test": files[:per_class] if c in CLASSES else []}
        for split, fs in plan.items():
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for f in fs:
                if not (d / f.name).exists():
                    (d / f.name).symlink_to(f.resolve())
    print(f"{root}: test has {sum(1 for _ in (root / 'test').rglob('*.jpg'))} images")


if __name__ == "__main__":
    n = sys.argv[2] if len(sys.argv) > 2 else "20"
    main(sys.argv[1] if len(sys.argv) > 1 else "pbc100", None if n == "all" else int(n))
