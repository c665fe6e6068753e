"""Ultralytics YOLO as the WBC counter a user would pick instead (peers venv: torch + ultralytics).

Trained from scratch from Ultralytics' own model config (``yolov8n.yaml`` / ``yolo11n.yaml``, no
pretrained weights: none can be downloaded here) on a YOLO dataset written by ``export_data.py
fields``. Subcommands:

- ``train --set bccd --cfg yolov8n.yaml --imgsz 416 --hours 0.4``: Ultralytics' own recipe (its
  augmentation, SGD/AdamW auto, its val-mAP checkpoint choice) on CPU, for a fixed wall clock.
- ``predict --weights W --sources bccd:val,bccd:test,...``: boxes + confidences per field (conf
  >= 0.05, the scorer chooses the threshold on val), each field timed end to end at 1 thread
  (``torch.set_num_threads(1)``; run it under ``taskset -c 1``): read the JPEG, letterbox, forward, NMS.
- ``export --weights W --format onnx|tflite``: Ultralytics' own export, offline, without auto-install
  of missing packages; the error is written to the JSON when it fails.

Every output is JSON under $PEERS_CACHE (default ~/.cache/edge-wbc/peers); ``score.py count`` scores it
with edge-wbc's scorer in the edge-wbc venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import traceback
from pathlib import Path

CACHE = Path(os.environ.get("PEERS_CACHE", Path.home() / ".cache" / "edge-wbc" / "peers"))
os.environ.setdefault("YOLO_CONFIG_DIR", str(CACHE / "ultralytics"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


def versions() -> dict:
    import torch
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "python": platform.python_version()}


def train(a) -> None:
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(a.threads)
    out = CACHE / "runs" / a.name
    data = CACHE / "yolo" / a.set / "data.yaml"
    model = YOLO(a.cfg)  # from the config: random init, no weights
    t0 = time.time()
    err = None
    try:
        model.train(data=str(data), imgsz=a.imgsz, epochs=a.epochs, time=a.hours, batch=a.batch, device="cpu",
                    workers=a.workers, pretrained=False, amp=False, plots=False, project=str(out.parent),
                    name=out.name, exist_ok=True, seed=0, deterministic=False, cache="ram", patience=100,
                    verbose=False)
    except Exception as e:  # noqa: BLE001 - the row keeps the error
        err = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    info = {"set": a.set, "cfg": a.cfg, "pretrained": False, "imgsz": a.imgsz, "epochs_max": a.epochs,
            "hours": a.hours, "batch": a.batch, "threads": a.threads, "train_seconds": time.time() - t0,
            "weights": str(out / "weights" / "best.pt"), "error": err, **versions()}
    res = out / "results.csv"
    if res.is_file():
        lines = res.read_text().strip().splitlines()
        info["epochs_run"] = len(lines) - 1
        info["last_row"] = dict(zip([c.strip() for c in lines[0].split(",")], lines[-1].split(",")))
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


def predict(a) -> None:
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(1)
    man = json.loads((CACHE / "fields" / "manifest.json").read_text())
    info_p = Path(a.weights).parents[1] / "train_info.json"
    info = json.loads(info_p.read_text()) if info_p.is_file() else {}
    res = {"model": a.label or f"YOLO {Path(info.get('cfg', 'yolo')).stem} ({a.backend})", "backend": a.backend,
           "weights": Path(a.weights).name, "imgsz": a.imgsz, "conf": a.conf, "train": info, **versions(),
           "threads": 1, "sources": {}}
    try:
        model = YOLO(a.weights, task="detect")
        for key in a.sources.split(","):
            src, split = key.split(":")
            rows = man[src][split][: a.limit]
            for _ in range(2):  # warm-up
                model.predict(rows[0]["image"], imgsz=a.imgsz, conf=a.conf, device="cpu", verbose=False)
            out = []
            for r in rows:
                t0, c0 = time.perf_counter(), time.process_time()
                p = model.predict(r["image"], imgsz=a.imgsz, conf=a.conf, device="cpu", verbose=False)[0]
                ms, cpu_ms = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
                b = p.boxes
                boxes = [[*map(float, xy), float(c)] for xy, c in zip(b.xyxy.tolist(), b.conf.tolist())]
                out.append({"image": r["image"], "boxes": boxes, "ms": ms, "cpu_ms": cpu_ms})
            res["sources"][key] = out
            print(key, len(out), "fields", flush=True)
    except Exception as e:  # noqa: BLE001 - the row keeps the error
        res["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res) + "\n")


def export(a) -> None:
    from ultralytics import YOLO

    res = {"weights": a.weights, "format": a.format, "int8": a.int8, "imgsz": a.imgsz, **versions()}
    t0 = time.time()
    try:
        f = YOLO(a.weights).export(format=a.format, imgsz=a.imgsz, int8=a.int8, device="cpu",
                                   data=str(CACHE / "yolo" / "bccd" / "data.yaml") if a.int8 else None)
        res |= {"file": str(f), "size_kb": Path(f).stat().st_size / 1024 if f and Path(f).is_file() else None,
                "error": None if f else "export returned no file"}
    except BaseException as e:  # noqa: BLE001 - SystemExit from a failed requirement check included
        res["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        traceback.print_exc()
    res["seconds"] = time.time() - t0
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--set", default="bccd")
    t.add_argument("--cfg", default="yolov8n.yaml")
    t.add_argument("--name", default=None)
    t.add_argument("--imgsz", type=int, default=416)
    t.add_argument("--epochs", type=int, default=300, help="upper bound; --hours decides")
    t.add_argument("--hours", type=float, default=0.4, help="wall-clock budget (Ultralytics' time=)")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--workers", type=int, default=1)
    t.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("predict")
    p.add_argument("--weights", required=True)
    p.add_argument("--backend", default="pytorch")
    p.add_argument("--label", default=None)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--conf", type=float, default=0.05)
    p.add_argument("--sources", default="bccd:val,bccd:test,sigtuple:test,smartphone_pig:test")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", required=True)
    e = sub.add_parser("export")
    e.add_argument("--weights", required=True)
    e.add_argument("--format", default="onnx")
    e.add_argument("--int8", action="store_true")
    e.add_argument("--imgsz", type=int, default=416)
    e.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "train":
        a.name = a.name or f"yolo_{Path(a.cfg).stem}_{a.set}"
        train(a)
    else:
        {"predict": predict, "export": export}[a.cmd](a)


if __name__ == "__main__":
    main()
