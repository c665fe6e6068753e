"""Per-layer time: each op of a ``.tflite`` cut out as its own one-op model and timed alone.

Every op of the graph becomes a model whose inputs are that op's activation inputs and whose outputs
are its outputs (weights and biases stay constant tensors), built with LiteRT's flatbuffer tools; it
runs on random inputs of the right type and shape. Each op's p50, its share of the sum, and its MACs
are reported with the whole model's p50, so that the sum can be checked against the whole
(``sum_vs_whole`` = sum / whole - 1). Ops whose inputs are all constants (the weight DEQUANTIZE ops of
a float16 model, folded at load time) are skipped; in a float16 model the other ops then take their
dequantized weights as runtime inputs.

:func:`draw_time_bar` draws the result as a stacked bar (each op's p50, in graph order, beside one bar
of the whole model's p50); ``edge-wbc inspect --time --plot`` puts it under the SQNR plot.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from ..runtime import interpreter_backend


def _flatbuffer_utils():
    try:
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:  # older LiteRT, or TensorFlow's copy
        from tensorflow.lite.tools import flatbuffer_utils
    return flatbuffer_utils


def op_models(content: bytes) -> list[dict]:
    """One dict per op: index, op name, output tensor name, and the one-op model's bytes."""
    fb = _flatbuffer_utils()
    model = fb.convert_bytearray_to_object(bytearray(content))
    sg = model.subgraphs[0]
    codes = model.operatorCodes

    def is_const(t: int) -> bool:
        b = model.buffers[sg.tensors[t].buffer]
        return b.data is not None and len(b.data) > 0

    out = []
    for i, op in enumerate(sg.operators):
        if not any(t >= 0 and not is_const(t) for t in op.inputs):
            continue
        code = codes[op.opcodeIndex]
        name = max(code.builtinCode, getattr(code, "deprecatedBuiltinCode", 0) or 0)
        m = copy.deepcopy(model)
        s = m.subgraphs[0]
        s.operators = [copy.deepcopy(op)]
        s.inputs = np.array([t for t in op.inputs if t >= 0 and not is_const(t)], np.int32)
        s.outputs = np.array(list(op.outputs), np.int32)
        m.signatureDefs = []
        out.append({"index": i, "code": int(name), "tensor": sg.tensors[op.outputs[0]].name.decode(),
                    "content": bytes(fb.convert_object_to_bytearray(m))})
    return out


def _p50(content: bytes, runs: int, warmup: int, threads: int) -> tuple[float, object]:
    Interp, _, _ = interpreter_backend()
    it = Interp(model_content=content, num_threads=threads)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        dt = np.dtype(d["dtype"])
        x = (rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, d["shape"], endpoint=True).astype(dt) if dt.kind in "iu"
             else rng.random(d["shape"]).astype(dt))
        it.set_tensor(d["index"], x)
    for _ in range(warmup):
        it.invoke()
    lat = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        it.invoke()
        lat.append((time.perf_counter_ns() - t) / 1e6)
    return float(np.percentile(lat, 50)), it


def layer_times(content: bytes, runs: int = 200, warmup: int = 20, threads: int = 1) -> dict:
    from ..metrics.macs import tflite_params_macs

    whole, it = _p50(content, runs, warmup, threads)
    ops = {o["index"]: o for o in it._get_ops_details()}
    rows = []
    for om in op_models(content):
        try:
            p50, sub = _p50(om["content"], runs, warmup, threads)
        except (RuntimeError, ValueError) as e:
            name = ops.get(om["index"], {}).get("op_name", str(om["code"]))
            rows.append({"index": om["index"], "op": name, "tensor": om["tensor"], "p50_ms": 0.0, "macs": 0,
                         "error": str(e).splitlines()[0]})
            continue
        try:
            _, macs = tflite_params_macs(sub)
        except Exception:  # noqa: BLE001 - an op the MAC counter does not know
            macs = 0
        name = ops.get(om["index"], {}).get("op_name", str(om["code"]))
        rows.append({"index": om["index"], "op": name, "tensor": om["tensor"], "p50_ms": p50, "macs": int(macs)})
    whole = (whole + _p50(content, runs, warmup, threads)[0]) / 2  # before and after the ops: less drift
    total = sum(r["p50_ms"] for r in rows)
    for r in rows:
        r["share"] = r["p50_ms"] / total if total else None
    return {"whole_ms": whole, "sum_ms": total, "sum_vs_whole": total / whole - 1 if whole else None,
            "threads": threads, "runs": runs, "layers": rows}


def draw_time_bar(ax, tm: dict, label_share: float = 0.06) -> dict:
    """Draw ``layer_times``'s result on ``ax``: a bar of the ops' p50 stacked in graph order, and a bar of
    the whole model's p50 below it. Segments are coloured by op type; those with at least
    ``label_share`` of the sum carry their op index. Returns {"ops": [Rectangle ...], "whole": Rectangle},
    each Rectangle's ``gid`` ``op<index>`` / ``whole``, its width the time in ms.
    """
    import matplotlib.pyplot as plt

    rows = tm["layers"]
    kinds = list(dict.fromkeys(r["op"] for r in rows))
    colors = {k: plt.get_cmap("tab10" if len(kinds) <= 10 else "tab20")(i % 20) for i, k in enumerate(kinds)}
    left, bars, seen = 0.0, [], set()
    for r in rows:
        w = float(r["p50_ms"])
        (bar,) = ax.barh(1, w, left=left, height=0.6, color=colors[r["op"]], edgecolor="white", linewidth=0.5,
                         label=None if r["op"] in seen else r["op"]).patches
        seen.add(r["op"])
        bar.set_gid(f"op{r['index']}")
        if tm["sum_ms"] and w / tm["sum_ms"] >= label_share:
            ax.text(left + w / 2, 1, str(r["index"]), ha="center", va="center", fontsize=7)
        bars.append(bar)
        left += w
    (whole,) = ax.barh(0, float(tm["whole_ms"]), height=0.6, color="0.6").patches
    whole.set_gid("whole")
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["whole model", "ops alone (sum)"])
    ax.set_xlabel(f"p50 ms ({tm['threads']} thread{'s' if tm['threads'] != 1 else ''}, {tm['runs']} runs)")
    vs = tm.get("sum_vs_whole")
    ax.set_title(f"per-op time: sum {tm['sum_ms']:.4f} ms vs whole {tm['whole_ms']:.4f} ms"
                 + (f" ({100 * vs:+.1f} %)" if vs is not None else "") + "; numbers: op index", fontsize=9)
    ax.legend(fontsize=7, ncol=min(len(kinds), 4), loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False)
    return {"ops": bars, "whole": whole}
