"""Does MediaPipe Tasks' ImageSegmenter load a shipped segmenter, and do its masks match edge-wbc's?

    python scripts/mediapipe_segmenter_check.py android_assets/wbc_unet_int8.tflite IMAGE... \
        --mediapipe-python /path/to/venv-with-mediapipe/bin/python

MediaPipe (in that Python, or this one) runs ImageSegmenter with confidence masks on each file, at the
image's own size; edge-wbc runs TFLiteSegmenter.predict_image (its resize, the maps scaled back
bilinearly). A pixel belongs to a label above probability 0.5 in both. Prints, per label, the share
of pixels whose masks differ, over all images, and the labels MediaPipe read from the model's metadata
(``ImageSegmenter.labels``: empty for a model without it).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MP = r"""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision
model, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
opts = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model),
                                    output_confidence_masks=True, output_category_mask=False)
seg = vision.ImageSegmenter.create_from_options(opts)
masks = {"labels": np.array(seg.labels, dtype=str)}
try:
    for i, f in enumerate(files):
        r = seg.segment(mp.Image.create_from_file(f))
        masks[str(i)] = np.stack([m.numpy_view().squeeze() for m in r.confidence_masks], -1)
finally:
    seg.close()
np.savez(out, **masks)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--mediapipe-python", default=sys.executable)
    a = ap.parse_args()
    from edge_wbc.preprocess import load_image
    from edge_wbc.runtime import TFLiteSegmenter

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mp.npz"
        # another venv's Python must not see this one's packages
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.setdefault("GLOG_minloglevel", "2")
        r = subprocess.run([a.mediapipe_python, "-c", MP, a.model, str(out), *a.images], capture_output=True, text=True,
                           env=env)
        if r.returncode != 0:
            sys.exit("MediaPipe ImageSegmenter failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
        mp_masks = np.load(out)
        mp_labels = [str(v) for v in mp_masks["labels"]]
        seg = TFLiteSegmenter(a.model)
        diff = np.zeros(seg.spec.num_classes)
        total = 0
        for i, f in enumerate(a.images):
            ours = seg.predict_image(load_image(f)) > 0.5
            theirs = mp_masks[str(i)] > 0.5
            if theirs.shape != ours.shape:
                sys.exit(f"{f}: MediaPipe mask {theirs.shape} vs edge-wbc {ours.shape}")
            diff += (ours != theirs).reshape(-1, ours.shape[-1]).sum(0)
            total += ours.shape[0] * ours.shape[1]
    res = {lab: float(d / total) for lab, d in zip(seg.spec.labels, diff)}
    print(json.dumps({"model": a.model, "images": len(a.images), "pixels": total, "mediapipe_labels": mp_labels,
                      "differing_share": res}))


if __name__ == "__main__":
    main()
