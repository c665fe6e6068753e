"""Export the data the peers train and are scored on, through edge-wbc's own loaders (edge-wbc venv).

Runs in the edge-wbc venv (it needs edge_wbc, not torch). Writes derived data under the cache dir
($PEERS_CACHE, default ~/.cache/edge-wbc/peers), never into the repository:

- ``fields``: ``fields/manifest.json`` = {source: {split: [{"image": path, "boxes": [[x1,y1,x2,y2]...]}]}}
  for the three field sources of the count protocol (bccd: the dataset's own train/val/test smears and
  VOC WBC boxes; sigtuple: the 13 masked Test_data fields, boxes = mask components, as
  ``benchmarks/count_eval.py`` scores them, and the 164 training patches split as edge-wbc splits them;
  smartphone_pig: train/valid/test with its YOLO boxes), and one YOLO dataset folder per training set
  (``yolo/<name>/{images,labels}/{train,val}`` as symlinks + labels, ``data.yaml``).
- ``crops``: ``crops/cells.npz`` = the field classifier's WBC-centred crops of pbc128, bccd and
  wbcseg (edge_wbc.tasks.cellsets.load_cell_crops, the crops ``edge-wbc loso`` trains on, cached at
  80 px) with labels, sources and splits, plus the 64 px model-size crops (to_model_size), and the
  segmenter's sha256.

    PYTHONPATH=. EDGE_WBC_DATA=../shared/data python benchmarks/peers/export_data.py fields crops
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from count_eval import bccd_smears, pig_smears, sigtuple_smears  # noqa: E402

from edge_wbc.data import data_root  # noqa: E402
from edge_wbc.data.segdata import _split_ids  # noqa: E402
from edge_wbc.tasks.segment import component_boxes  # noqa: E402


def cache() -> Path:
    return Path(os.environ.get("PEERS_CACHE", Path.home() / ".cache" / "edge-wbc" / "peers"))


def _rows(smears):
    return [{"image": str(p), "boxes": [list(map(int, b)) for b in gt]} for p, gt, _ in smears]


def sigtuple_train_patches(root: Path) -> dict[str, list]:
    """The 164 SigTuple training patches, split as edge-wbc splits them (segdata._split_ids, seed 0),
    boxes = the WBC mask's components (the mask thresholded at 128)."""
    d = root / "sigtuple" / "Train_data"
    ids = sorted(p.stem for p in d.glob("train-*.jpg") if not p.stem.endswith("-mask")
                 and (d / f"{p.stem}-mask.jpg").is_file())
    out = {}
    for s, names in _split_ids(ids, 0).items():
        rows = []
        for n in names:
            m = np.asarray(Image.open(d / f"{n}-mask.jpg").convert("L")) >= 128
            rows.append({"image": str(d / f"{n}.jpg"), "boxes": [list(map(int, b)) for b, _, _ in
                                                                  component_boxes(m, 200)]})
        out[s if s != "test" else "patch_test"] = rows  # the fields' test split is Test_data
    return out


def export_fields(root: Path, out: Path) -> dict:
    man = {
        "bccd": {s: _rows(bccd_smears(root / "bccd", s)) for s in ("train", "val", "test")},
        "smartphone_pig": {"val" if s == "valid" else s: _rows(pig_smears(root, s))
                           for s in ("train", "valid", "test")},
        "sigtuple": {**sigtuple_train_patches(root), "test": _rows(sigtuple_smears(root))},
    }
    (out / "fields").mkdir(parents=True, exist_ok=True)
    (out / "fields" / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    # YOLO datasets: bccd (the minimum fair comparison), and the leave-one-source-out / all-source sets
    sets = {"bccd": ["bccd"], "all": ["bccd", "sigtuple", "smartphone_pig"],
            "no_bccd": ["sigtuple", "smartphone_pig"], "no_sigtuple": ["bccd", "smartphone_pig"],
            "no_smartphone_pig": ["bccd", "sigtuple"]}
    for name, srcs in sets.items():
        d = out / "yolo" / name
        for split in ("train", "val"):
            (d / "images" / split).mkdir(parents=True, exist_ok=True)
            (d / "labels" / split).mkdir(parents=True, exist_ok=True)
            for s in srcs:
                for r in man[s][split]:
                    src = Path(r["image"])
                    stem = f"{s}__{src.stem}"
                    link = d / "images" / split / f"{stem}{src.suffix}"
                    if not link.exists():
                        link.symlink_to(src)
                    w, h = Image.open(src).size
                    lines = [f"0 {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                             f"{(b[3] - b[1]) / h:.6f}" for b in r["boxes"]]
                    (d / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        (d / "data.yaml").write_text(f"path: {d}\ntrain: images/train\nval: images/val\nnames:\n  0: WBC\n")
    return {s: {k: len(v) for k, v in m.items()} for s, m in man.items()}


def export_crops(root: Path, out: Path) -> dict:
    from edge_wbc.defaults import CROP_RATIO, CROP_SEGMENTER
    from edge_wbc.runtime.wbccrop import crop_segmenter
    from edge_wbc.tasks.cellsets import load_cell_crops, to_model_size

    sources = ("pbc128", "bccd", "wbcseg")
    cc = load_cell_crops(sources, None, 0, CROP_RATIO, CROP_SEGMENTER)
    seg = crop_segmenter(CROP_SEGMENTER)
    sha = hashlib.sha256(Path(seg.path).read_bytes()).hexdigest()
    (out / "crops").mkdir(parents=True, exist_ok=True)
    np.savez(out / "crops" / "cells.npz", x80=cc.x, x64=to_model_size(cc.x, (64, 64)), y=cc.y,
             src=cc.src.astype(str), split=cc.split.astype(str), found=cc.found)
    info = {"sources": list(sources), "crop_ratio": CROP_RATIO, "segmenter": Path(seg.path).name,
            "segmenter_sha256": sha, "n": int(len(cc.y)),
            "counts": {s: {sp: int(((cc.src == s) & (cc.split == sp)).sum()) for sp in ("train", "val", "test")}
                       for s in sources}}
    (out / "crops" / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="+", choices=("fields", "crops"))
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    root, out = data_root(a.data), cache()
    out.mkdir(parents=True, exist_ok=True)
    if "fields" in a.what:
        print(json.dumps(export_fields(root, out)))
    if "crops" in a.what:
        print(json.dumps(export_crops(root, out)))
    print(out)


if __name__ == "__main__":
    main()
