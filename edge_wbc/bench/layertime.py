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

import numpy as np

from ..runtime import interpreter_backend
from .clocks import CLOCKS


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


def _random_inputs(it) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for d in it.get_input_details():
        dt = np.dtype(d["dtype"])
        out[d["index"]] = (rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, d["shape"], endpoint=True).astype(dt)
                           if dt.kind in "iu" else rng.random(d["shape"]).astype(dt))
    return out


def _tensor_values(content: bytes, inputs: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor's value (by index) after one run of the whole model on ``inputs``."""
    from ..runtime.interpreter import preserving_interpreter

    it = preserving_interpreter(content)
    for i, x in inputs.items():
        it.set_tensor(i, x)
    it.invoke()
    out = {}
    for t in it.get_tensor_details():
        try:
            out[t["index"]] = it.get_tensor(t["index"])
        except ValueError:  # a tensor without data (an optional input)
            pass
    return out


def _ready(content: bytes, threads: int, values: dict[int, np.ndarray] | None = None):
    """An allocated interpreter with its inputs set: from ``values`` (tensor index -> array) where it has
    them, else random of the right type and shape."""
    Interp, _, _ = interpreter_backend()
    it = Interp(model_content=content, num_threads=threads)
    values = {d["index"]: values[d["index"]] for d in it.get_input_details() if d["index"] in (values or {})}
    for d in it.get_input_details():  # a tensor whose shape was only known at run time: before allocating
        if d["index"] in values and values[d["index"]].shape != tuple(d["shape"]):
            it.resize_tensor_input(d["index"], values[d["index"]].shape)
    it.allocate_tensors()
    rand = _random_inputs(it)
    for d in it.get_input_details():
        it.set_tensor(d["index"], values.get(d["index"], rand[d["index"]]))
    return it


def interleaved_p50(interpreters: list, runs: int, warmup: int, burst: int = 5, clock: str = "wall") -> list[float]:
    """p50 ms of each interpreter's ``invoke``, timed in rounds: every round gives each interpreter one
    untimed invoke (its weights and arena back in cache) and then ``burst`` timed ones, so that a slow
    spell of a shared machine (another job, a frequency change) lands on every model alike instead of
    on whichever was being timed then. ``runs`` timed invokes per interpreter in all. ``clock``: ``wall``
    (perf_counter) or ``cpu`` (this thread's CPU time: leaves out the time another process held the core,
    which a long invoke cannot dodge and a short one mostly does; one thread only)."""
    if clock not in CLOCKS:
        raise ValueError(f"invalid clock {clock!r}: valid choices are {', '.join(CLOCKS)}")
    for it in interpreters:
        for _ in range(warmup):
            it.invoke()
    rounds = max(1, -(-runs // burst))
    lat = np.empty((rounds * burst, len(interpreters)))
    clock = CLOCKS[clock]
    for r in range(rounds):
        for j, it in enumerate(interpreters):
            it.invoke()
            for b in range(burst):
                t = clock()
                it.invoke()
                lat[r * burst + b, j] = (clock() - t) / 1e6
    return [float(v) for v in np.percentile(lat[:runs], 50, axis=0)]


def layer_times(content: bytes, runs: int = 200, warmup: int = 20, threads: int = 1, clock: str = "wall") -> dict:
    """Each op's p50 alone, the whole model's p50 and ``sum_vs_whole``, all timed in the same rounds
    (:func:`interleaved_p50`)."""
    from ..metrics.macs import tflite_params_macs

    if clock == "cpu" and threads != 1:
        raise ValueError(f"clock 'cpu' counts this thread only: it needs threads=1, not {threads}")
    whole_it = _ready(content, threads)
    ops = {o["index"]: o for o in whole_it._get_ops_details()}
    # each op alone runs on the values its inputs had inside the whole model: shape tensors computed
    # at run time (RESHAPE's, TILE's) are then valid, and the data is what the op really sees
    values = _tensor_values(content, _random_inputs(whole_it))
    rows, timed = [], []
    for om in op_models(content):
        name = ops.get(om["index"], {}).get("op_name", str(om["code"]))
        row = {"index": om["index"], "op": name, "tensor": om["tensor"], "p50_ms": 0.0, "macs": 0}
        rows.append(row)
        try:
            sub = _ready(om["content"], threads, values)
            sub.invoke()
        except (RuntimeError, ValueError) as e:
            row["error"] = str(e).splitlines()[0]
            continue
        try:
            _, row["macs"] = tflite_params_macs(sub)
            row["macs"] = int(row["macs"])
        except Exception:  # noqa: BLE001 - an op the MAC counter does not know
            row["macs"] = 0
        timed.append((row, sub))
    p50 = interleaved_p50([whole_it] + [sub for _, sub in timed], runs, warmup, clock=clock)
    whole = p50[0]
    for (row, _), t in zip(timed, p50[1:]):
        row["p50_ms"] = t
    total = sum(r["p50_ms"] for r in rows)
    for r in rows:
        r["share"] = r["p50_ms"] / total if total else None
    return {"whole_ms": whole, "sum_ms": total, "sum_vs_whole": total / whole - 1 if whole else None,
            "threads": threads, "runs": runs, "timing": "interleaved", "clock": clock, "layers": rows}


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
