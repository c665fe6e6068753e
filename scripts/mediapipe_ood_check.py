"""Does a bundle with a features output still load in MediaPipe Tasks with the same answers, and do
MediaPipe's raw outputs give the same OOD decisions as edge-wbc's runtime?

MediaPipe's ImageClassifier reads every output tensor as a classification head. This script feeds it
images already at the model's input size (so its resize is the identity), and compares, image by image:
head 0 (the class scores) with edge-wbc's probabilities of the same file, head 1 (the features, which
MediaPipe dequantizes and reports as 'scores') with edge-wbc's dequantized features, and the OOD
decision computed from each with the bundle's statistics. Needs a Python with mediapipe
(``$EDGE_WBC_MEDIAPIPE_PYTHON``, e.g. a venv with ``pip install mediapipe==1.2.3 numpy``).

    EDGE_WBC_MEDIAPIPE_PYTHON=/path/to/mpvenv/bin/python python scripts/mediapipe_ood_check.py \\
        android_assets/wbc_field_int8.tflite [--n 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WORKER = r"""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision
job = json.load(open(sys.argv[1]))
opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=job["model"]), max_results=-1)
clf = vision.ImageClassifier.create_from_options(opts)
heads = []
for f in job["files"]:
    res = clf.classify(mp.Image.create_from_file(f))
    row = []
    for h in res.classifications:
        v = np.zeros(job["widths"][h.head_index], np.float32)
        for c in h.categories:
            v[c.index] = c.score
        row.append(v.tolist())
    heads.append(row)
clf.close()
json.dump({"heads": heads, "version": mp.__version__}, open(job["out"], "w"))
"""


def main() -> int:
    from edge_wbc.assets import resolve_model
    from edge_wbc.runtime import TFLiteClassifier
    from edge_wbc.tasks.cellsets import load_for_spec

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=200, help="test crops, spread over the sources")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    py = os.environ.get("EDGE_WBC_MEDIAPIPE_PYTHON")
    if not py:
        print("set EDGE_WBC_MEDIAPIPE_PYTHON to a Python with mediapipe", file=sys.stderr)
        return 2
    clf = TFLiteClassifier(resolve_model(a.model))
    if clf.ood is None:
        print(f"{clf.path}: no OOD statistics ({clf.ood_off_reason()})", file=sys.stderr)
        return 2
    test = load_for_spec(clf.spec.dataset, clf.spec).split("test").sample(a.n, seed=0)
    # plus a few inputs that should be flagged: noise and solid colours at the input size
    rng = np.random.default_rng(0)
    h, w, c = clf.spec.input_shape
    probes = np.concatenate([rng.integers(0, 256, (10, h, w, c), dtype=np.uint8),
                             np.stack([np.full((h, w, c), v, np.uint8) for v in ((200, 30, 30), (255, 255, 255),
                                                                                   (0, 0, 0), (120, 80, 160))])])
    x = np.concatenate([test.images, probes])
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, im in enumerate(x):
            f = Path(d) / f"{i:04d}.png"
            Image.fromarray(im).save(f)
            files.append(str(f))
        widths = [int(o["shape"][-1]) for o in clf.interpreter.get_output_details()]
        job = {"model": str(clf.path), "files": files, "widths": widths, "out": str(Path(d) / "mp.json")}
        (Path(d) / "job.json").write_text(json.dumps(job))
        wf = Path(d) / "worker.py"
        wf.write_text(WORKER)
        r = subprocess.run([py, str(wf), str(Path(d) / "job.json")], capture_output=True, text=True, timeout=600)
        if r.returncode:
            print(f"mediapipe failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}",
                  file=sys.stderr)
            return 1
        mp_out = json.loads(Path(job["out"]).read_text())
    heads = mp_out["heads"]
    mp_probs = np.array([row[0] for row in heads], np.float32)
    mp_feats = np.array([row[1] for row in heads], np.float32)
    probs, feats = clf.predict_features(x)
    ours, theirs = clf.ood.is_ood(feats), clf.ood.is_ood(mp_feats)
    out = {
        "model": str(clf.path), "mediapipe": mp_out["version"], "n": int(len(x)), "n_probes": int(len(probes)),
        "heads": len(heads[0]),
        "top1_agreement": float((mp_probs.argmax(1) == probs.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(mp_probs - probs).max()),
        "max_feature_diff": float(np.abs(mp_feats - feats).max()),
        "ood_decision_agreement": float((ours == theirs).mean()),
        "ood_flagged_test": float(ours[: len(test)].mean()), "ood_flagged_probes": float(ours[len(test):].mean()),
    }
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
