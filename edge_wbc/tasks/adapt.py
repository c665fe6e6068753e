"""Adapt a field classifier to a microscope without TensorFlow: feature alignment on unlabelled cells.

``edge-wbc adapt MODEL --images DIR --out OUT --method features``: the user's cells go through the
converted model (int8 as shipped) and its features output; the bundle gets ``shift``, the move from
the user's feature mean to the training class means mixed in the user's own class proportions
(:meth:`edge_wbc.runtime.ood.OODStats.estimate_shift`), stored in ``metrics.ood``. From then on the
runtime adds ``shift`` to every cell's features and applies the model's Dense head in NumPy
(:meth:`edge_wbc.runtime.ood.OODStats.head_probs`); the OOD score is computed on the shifted features.
This is the last-layer analogue of AdaBN (which re-estimates every BatchNorm layer and needs the
Keras model): it needs only the runtime, so it runs on a Raspberry Pi or a phone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..data import iter_inputs
from ..defaults import ADAPT_MIN_IMAGES, ADAPT_SHIFT
from ..errors import EdgeWBCError, ImageError
from ..fileio import atomic_write_text
from ..preprocess import display_name, load_image
from ..runtime import TFLiteClassifier
from ..runtime.quality import QualityLimits
from ..spec import spec_path_for
from .cells import find_cell


class AdaptError(EdgeWBCError):
    pass


def adapt_features(model: str | Path, images: str | Path, out: str | Path, log=print,
                   min_images: int = ADAPT_MIN_IMAGES, shift_kind: str = ADAPT_SHIFT) -> dict:
    """Write ``out/<name>.tflite`` (+ its JSON and labels) with the feature shift of ``images``."""
    clf = TFLiteClassifier(model)
    if clf.ood is None or clf.ood.head_kernel is None:
        raise AdaptError(f"{clf.path.name}: --method features needs a model converted with --ood (features output, "
                         "OOD statistics and head); use --method adabn with the Keras model")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AdaptError(f"--out {out}: is a file, not a folder (choose a new folder)")
    if out.exists() and any(out.iterdir()):
        raise AdaptError(f"--out {out}: not empty (choose a new folder)")
    feats, used, skipped = [], [], []
    limits = QualityLimits.from_dict((clf.spec.metrics or {}).get("quality"))
    base = clf.ood.shift
    for p in iter_inputs([images]):
        try:
            img = load_image(p)
            pred, found = find_cell(clf, img, limits)  # as classify crops it, and what it would flag
        except ImageError as e:
            skipped.append((display_name(p), str(e)))
            continue
        if found:
            skipped.append((display_name(p), "no WBC found" if found == ["no_wbc"] else "not a single cell"))
            continue
        f = pred.features if base is None else pred.features - base.astype(np.float32)  # undo an earlier shift
        feats.append(f)
        used.append(display_name(p))
    if len(feats) < min_images:
        raise AdaptError(f"--images {images}: {len(feats)} usable cell images, at least {min_images} needed "
                         f"({len(skipped)} skipped)")
    shift, pi = clf.ood.estimate_shift(np.stack(feats), shift_kind)
    adapted = {"method": "features", "shift": shift_kind, "images": len(feats), "skipped": len(skipped),
               "folder": display_name(images),
               "shift_norm": float(np.linalg.norm(shift)),
               "class_proportions": {lab: round(float(v), 4) for lab, v in zip(clf.labels, pi)},
               "rule": "f' = f + shift; p = softmax(f' @ head.kernel + head.bias); OOD score on f'"}
    stats = clf.ood.with_shift(shift, adapted)
    doc = json.loads(spec_path_for(clf.path).read_text())
    spec_d = doc.get("model_spec", doc)  # a bundle nests the spec; a plain model.json is the spec
    spec_d.setdefault("metrics", {})["ood"] = stats.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    name = clf.path.stem
    shutil.copyfile(clf.path, out / f"{name}.tflite")
    for suffix in (".labels.txt",):
        src = clf.path.with_name(name + suffix)
        if src.is_file():
            shutil.copyfile(src, out / src.name)
    atomic_write_text(out / f"{name}.json", json.dumps(doc, indent=2) + "\n")
    log(f"{len(feats)} cells used, {len(skipped)} skipped; feature shift of norm {adapted['shift_norm']:.2f}")
    return {"out": str(out / f"{name}.tflite"), **adapted}
