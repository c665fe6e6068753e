"""`edge-wbc count`'s boxes on the peers' field manifest, in the peers' prediction format (edge-wbc venv).

The counter is built as the CLI builds it (`edge-wbc count` with no mode flag: the shipped field detector,
the cell segmenter for single-cell crops, the default classifier), 1 thread. Each field is timed end
to end (decode, scale estimate, detect, crop, classify), after one warm-up field: wall clock (``ms``)
and this process's CPU time (``cpu_ms``; at 1 thread the better figure on a loaded machine). Writes
{"model": ..., "models_sha256": ..., "sources": {"<source>:<split>": [{"image", "boxes", "ms"}]}}.

    PYTHONPATH=. EDGE_WBC_DATA=../shared/data taskset -c 1 python benchmarks/peers/edge_count.py \
        --sources bccd:test,sigtuple:test,smartphone_pig:test --out ~/.cache/edge-wbc/peers/preds/edge_wbc.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from export_data import cache


def main():
    from edge_wbc.assets import DEFAULT_CLASSIFIER, DEFAULT_DETECTOR, SMALL_FIELD_DETECTOR
    from edge_wbc.cli.segment import model_or_default
    from edge_wbc.tasks.count import SmearCounter

    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", default="bccd:test,sigtuple:test,smartphone_pig:test")
    ap.add_argument("--limit", type=int, default=None, help="at most N fields per source (the first N)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    man = json.loads((cache() / "fields" / "manifest.json").read_text())
    paths = {
        "detector": model_or_default(None, DEFAULT_DETECTOR),
        "cell_model": model_or_default(None, "wbc_unet_int8.tflite"),
        "classifier": model_or_default(None, DEFAULT_CLASSIFIER),
    }
    paths["small_detector"] = model_or_default(None, SMALL_FIELD_DETECTOR)
    sc = SmearCounter(paths["detector"], paths["classifier"], threads=1, cell_model=paths["cell_model"],
                      small_detector=paths["small_detector"])
    res = {"model": "edge-wbc count (default pipeline, int8 TFLite, 1 thread)",
           "models_sha256": {k: {"file": Path(v).name, "sha256": hashlib.sha256(Path(v).read_bytes()).hexdigest()}
                             for k, v in paths.items()},
           "sources": {}}
    for key in a.sources.split(","):
        src, split = key.split(":")
        rows = man[src][split][: a.limit]
        sc.count_image(rows[0]["image"])  # warm-up
        out = []
        for r in rows:
            t0, c0 = time.perf_counter(), time.process_time()
            c = sc.count_image(r["image"])
            ms, cpu_ms = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
            out.append({"image": r["image"], "boxes": [list(map(float, x["box"])) + [1.0] for x in c["cells"]],
                        "ms": ms, "cpu_ms": cpu_ms})
        res["sources"][key] = out
        print(key, len(out), "fields", flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res) + "\n")  # after each source: a long run keeps what it did


if __name__ == "__main__":
    main()
