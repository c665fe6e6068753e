"""Roofline: this CPU's int8 and float32 conv throughput, through the same interpreter as bench.

The models (``int8.tflite``, ``float32.tflite`` beside this file, built by
``scripts/make_roofline_models.py``) are eight dense 3x3 convolutions, 64 -> 64 channels on a
28x28 map that stays in cache: the best case for the CPU kernels. A bench row's GMAC/s as a percentage of this roof
says how close the model is to what the machine can do.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def measure_roofline(threads=(1,), runs: int = 20, warmup: int = 3) -> dict:
    """{"int8": {"1": GMAC/s, ...}, "float32": {...}, "macs": n} measured now, median of ``runs``."""
    from ...metrics.macs import tflite_params_macs
    from ...runtime import interpreter_backend

    Interp, backend, version = interpreter_backend()
    out: dict = {"model": "8x Conv2D 3x3 64->64 on 28x28", "interpreter": f"{backend} {version}"}
    for kind in ("int8", "float32"):
        path = HERE / f"{kind}.tflite"
        out[kind] = {}
        for t in threads:
            it = Interp(model_path=str(path), num_threads=t)
            it.allocate_tensors()
            _, macs = tflite_params_macs(it)
            d = it.get_input_details()[0]
            rng = np.random.default_rng(0)
            x = (rng.integers(-128, 127, d["shape"], dtype=np.int8) if kind == "int8"
                 else rng.random(d["shape"], dtype=np.float32))
            it.set_tensor(d["index"], x)
            for _ in range(warmup):
                it.invoke()
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                it.invoke()
                ts.append(time.perf_counter() - t0)
            out[kind][str(t)] = macs / float(np.median(ts)) / 1e9
            out["macs"] = macs
    return out
