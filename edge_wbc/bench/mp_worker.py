"""The ``mediapipe`` bench client: MediaPipe Tasks ``ImageClassifier`` on the original image files.

Run as a script by whatever Python has mediapipe (``python mp_worker.py job.json``): it imports
nothing from edge_wbc and needs only mediapipe and NumPy, so it also runs from a separate venv
without TensorFlow (mediapipe and TensorFlow cannot share one venv: their protobuf pins conflict).

MediaPipe decodes each file (``mp.Image.create_from_file``) and resizes it to the model's input
itself, exactly as an app calling the Tasks API does; the bench only gives it the file and reads the
score of every category. Job keys: ``model``, ``files``, ``num_classes``, ``threads``, ``runs``,
``warmup``, ``out``, and optionally ``rois``: per file, None or the [left, top, right, bottom] region
(0..1 of the image) that the model is to see, passed as ``ImageProcessingOptions.region_of_interest``
(an app that crops the WBC a segmenter found). Writes ``out`` (JSON) and ``<out>.probs.npy``; never raises.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _stats(ms):
    import numpy as np

    a = np.asarray(ms, float)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "n": int(len(a))}


def run(job: dict) -> dict:
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.components.containers.rect import RectF

    t0 = time.perf_counter()
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=job["model"]), max_results=-1)
    clf = vision.ImageClassifier.create_from_options(opts)
    init_ms = (time.perf_counter() - t0) * 1e3
    try:
        n_cls = int(job["num_classes"])
        images = [mp.Image.create_from_file(f) for f in job["files"]]
        rois = job.get("rois") or [None] * len(images)
        opts = [None if r is None else vision.ImageProcessingOptions(
            region_of_interest=RectF(left=r[0], top=r[1], right=r[2], bottom=r[3])) for r in rois]
        probs = np.zeros((len(images), n_cls), np.float32)
        for i, im in enumerate(images):
            res = clf.classify(im, opts[i])
            for c in res.classifications[0].categories:
                if 0 <= c.index < n_cls:
                    probs[i, c.index] = c.score
        k = max(1, min(len(images), 64))
        for i in range(job.get("warmup", 20)):
            clf.classify(images[i % k], opts[i % k])
        lat = []
        wall0 = time.perf_counter()
        for i in range(job.get("runs", 200)):
            t = time.perf_counter()
            clf.classify(images[i % k], opts[i % k])
            lat.append((time.perf_counter() - t) * 1e3)
        wall = time.perf_counter() - wall0
    finally:
        clf.close()
    probs_file = os.path.splitext(job["out"])[0] + ".probs.npy"
    np.save(probs_file, probs)
    return {"status": "ok", "device": "CPU", "input_dtype": None, "interpreter": f"mediapipe {mp.__version__}",
            "init_ms": init_ms, "latency_ms": _stats(lat), "throughput_ips": len(lat) / wall if wall > 0 else None,
            "probs_file": probs_file}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as fh:
        job = json.load(fh)
    try:
        res, code = run(job), 0
    except Exception as e:  # reported in the row
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        res, code = {"status": "failed", "error": f"mediapipe: {type(e).__name__}: {msg}"}, 1
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open(job["out"], "w") as fh:
        json.dump(res, fh)
    return code


if __name__ == "__main__":
    sys.exit(main())
