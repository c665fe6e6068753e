"""One bench variant in its own process, so that its peak RSS and timings do not mix with others.

``python -m edge_wbc.bench.worker job.json`` reads the job, writes ``<out>.json`` (timings, graph
stats, peak RSS) and ``<out>.probs.npy`` (probabilities on the images, when ``eval`` is set).
It never raises: a failure is written as ``{"status": "failed", "error": ...}`` with exit code 1.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms, float)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "n": int(len(a))}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_tflite(job: dict, images: np.ndarray) -> dict:
    from ..metrics.macs import tflite_params_macs
    from ..runtime import TFLiteClassifier

    threads, runs, warmup = job["threads"], job["runs"], job["warmup"]
    t0 = time.perf_counter()
    clf = TFLiteClassifier(job["path"], num_threads=threads)
    init_ms = (time.perf_counter() - t0) * 1e3
    res: dict = {
        "device": "CPU",
        "input_dtype": clf.input_dtype.name,
        "interpreter": f"{clf.backend} {clf.backend_version}",
    }
    res["params"], res["macs"] = tflite_params_macs(clf.interpreter)
    n_q = max(1, min(len(images), 64))
    q = [clf.quantize_input(images[i : i + 1]) for i in range(n_q)]
    it, idx_in = clf.interpreter, clf.input["index"]
    it.set_tensor(idx_in, q[0])
    t = time.perf_counter()
    it.invoke()
    first_ms = (time.perf_counter() - t) * 1e3
    for i in range(warmup):
        it.set_tensor(idx_in, q[i % n_q])
        it.invoke()
    lat = []
    pc = time.perf_counter_ns
    wall0 = pc()
    for i in range(runs):
        it.set_tensor(idx_in, q[i % n_q])
        t = pc()
        it.invoke()
        lat.append((pc() - t) / 1e6)
    wall = (pc() - wall0) / 1e9
    res.update(
        init_ms=init_ms, first_ms=first_ms, latency_ms=_stats(lat), throughput_ips=runs / wall if wall > 0 else None
    )
    if job.get("eval"):
        res["probs_file"] = str(Path(job["out"]).with_suffix(".probs.npy"))
        np.save(res["probs_file"], clf.predict(images))
    batch = job.get("batch")
    if batch and batch > 1:
        try:
            it.resize_tensor_input(idx_in, [batch, *images.shape[1:]])
            it.allocate_tensors()
            xb = clf.quantize_input(np.resize(images, (batch, *images.shape[1:])))
            it.set_tensor(idx_in, xb)
            it.invoke()
            n_b = max(3, runs // batch)
            t = time.perf_counter()
            for _ in range(n_b):
                it.set_tensor(idx_in, xb)
                it.invoke()
            res["batch_throughput_ips"] = batch * n_b / (time.perf_counter() - t)
        except Exception as e:  # a fixed-batch graph
            res["batch_throughput_ips"] = None
            res["batch_note"] = f"batch {batch} not supported: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return res


def run_compiled(job: dict, images: np.ndarray) -> dict:
    """LiteRT 2.x ``CompiledModel`` (what new apps use), CPU, on the same preprocessed images."""
    from importlib.metadata import version

    from ai_edge_litert import compiled_model as cm

    from ..runtime import TFLiteClassifier
    from ..runtime.interpreter import quiet_native_stderr

    clf = TFLiteClassifier(job["path"], num_threads=1)  # quantization and output decoding only
    t0 = time.perf_counter()
    with quiet_native_stderr():  # CompiledModel's ~30 INFO lines, shown with edge-wbc -v
        try:
            opts = cm.Options(hardware_accelerators=cm.HardwareAccelerator.CPU,
                              cpu_options=cm.CpuOptions(num_threads=job["threads"]))
            model = cm.CompiledModel.from_file(job["path"], options=opts)
        except (TypeError, AttributeError):
            model = cm.CompiledModel.from_file(job["path"])
        ins, outs = model.create_input_buffers(0), model.create_output_buffers(0)
    init_ms = (time.perf_counter() - t0) * 1e3
    n_out = int(np.prod(clf.output["shape"]))
    out_dtype = clf.output_dtype
    # the probabilities' place among the outputs (a model with a features output has two)
    k = [o["index"] for o in clf.interpreter.get_output_details()].index(clf.output["index"])

    def invoke(q):
        ins[0].write(q)
        model.run_by_index(0, ins, outs)
        return outs[k].read(n_out, out_dtype).reshape(clf.output["shape"])

    n_q = max(1, min(len(images), 64))
    q = [clf.quantize_input(images[i : i + 1]) for i in range(n_q)]
    t = time.perf_counter()
    invoke(q[0])
    first_ms = (time.perf_counter() - t) * 1e3
    for i in range(job["warmup"]):
        invoke(q[i % n_q])
    lat = []
    pc = time.perf_counter_ns
    wall0 = pc()
    for i in range(job["runs"]):
        t = pc()
        invoke(q[i % n_q])
        lat.append((pc() - t) / 1e6)
    wall = (pc() - wall0) / 1e9
    probs = np.stack([clf._probs(invoke(clf.quantize_input(images[i : i + 1])))[0] for i in range(len(images))])
    res = {"device": "CPU", "input_dtype": clf.input_dtype.name,
           "interpreter": f"ai_edge_litert {version('ai-edge-litert')} CompiledModel",
           "init_ms": init_ms, "first_ms": first_ms, "latency_ms": _stats(lat),
           "throughput_ips": job["runs"] / wall if wall > 0 else None}
    res["probs_file"] = str(Path(job["out"]).with_suffix(".probs.npy"))
    np.save(res["probs_file"], probs.astype(np.float32))
    return res


def run_keras(job: dict, images: np.ndarray) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from ..metrics.macs import keras_macs
    from ..spec import ModelSpec, spec_path_for

    gpus = tf.config.list_physical_devices("GPU")
    device = (
        f"GPU:{gpus[0].name.split(':')[-1]} "
        f"({tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')})"
        if gpus
        else "CPU"
    )
    path = Path(job["path"])
    from ..keras_objects import custom_objects
    model = keras.saving.load_model(path, safe_mode=True, compile=False, custom_objects=custom_objects())
    spec = ModelSpec.load(spec_path_for(path))
    fwd = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    x0 = tf.constant(images[:1].astype(np.float32))
    init_ms = (time.perf_counter() - t0) * 1e3
    t = time.perf_counter()
    fwd(x0).numpy()
    first_ms = (time.perf_counter() - t) * 1e3
    xs = [tf.constant(images[i : i + 1].astype(np.float32)) for i in range(min(len(images), 64))]
    for i in range(job["warmup"]):
        fwd(xs[i % len(xs)]).numpy()
    lat = []
    wall0 = time.perf_counter()
    for i in range(job["runs"]):
        t = time.perf_counter()
        fwd(xs[i % len(xs)]).numpy()
        lat.append((time.perf_counter() - t) * 1e3)
    wall = time.perf_counter() - wall0
    res = {
        "device": device,
        "input_dtype": "float32",
        "interpreter": f"keras {keras.__version__} / tensorflow {tf.__version__}",
        "params": int(model.count_params()),
        "macs": keras_macs(model),
        "init_ms": init_ms,
        "first_ms": first_ms,
        "latency_ms": _stats(lat),
        "throughput_ips": job["runs"] / wall,
    }
    if job.get("eval"):
        from ..runtime.probs import keras_probs

        p = keras_probs(model, images, spec)
        res["probs_file"] = str(Path(job["out"]).with_suffix(".probs.npy"))
        np.save(res["probs_file"], p)
    batch = job.get("batch")
    if batch and batch > 1:
        xb = tf.constant(np.resize(images, (batch, *images.shape[1:])).astype(np.float32))
        fwd(xb).numpy()
        n_b = max(3, job["runs"] // batch)
        t = time.perf_counter()
        for _ in range(n_b):
            fwd(xb).numpy()
        res["batch_throughput_ips"] = batch * n_b / (time.perf_counter() - t)
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out"])
    try:
        images = np.load(job["images"], allow_pickle=False)
        kind = "keras" if job["path"].endswith(".keras") else "tflite"
        if job.get("client") == "compiled":
            res = run_compiled(job, images)
        else:
            res = (run_keras if kind == "keras" else run_tflite)(job, images)
        res["status"] = "ok"
        code = 0
    except Exception as e:  # reported in the row; the bench goes on with the other variants
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        res = {"status": "failed", "error": f"{type(e).__name__}: {msg}"}
        code = 1
    res["peak_rss_mb"] = _peak_rss_mb()
    out.write_text(json.dumps(res))
    return code


if __name__ == "__main__":
    sys.exit(main())
