"""Per-layer int8 error: the float and the int8 ``.tflite`` of one model, tensor by tensor (``edge-wbc inspect``).

Both graphs run on the same real images with ``experimental_preserve_all_tensors=True`` and without
the default XNNPACK delegate (so every op's output stays readable). Each op output of the int8 graph
is matched with the float graph's tensor of the same name (the converter keeps Keras layer names in
both), or, when names do not line up, with the float op at the same place in the sequence of ops of
the same type. Per matched tensor, over all images:

* ``sqnr_db``: 10 log10(sum f^2 / sum (f - q)^2), q the dequantized int8 values, f the float ones;
* ``cosine``: cosine similarity of f and q (all images flattened);
* ``max_abs_err_steps``: max |f - q| in units of the int8 tensor's scale (0.5 = rounding only);
* ``clipped_share``: share of float values outside what the int8 tensor can represent
  ([(qmin - zp) * scale, (qmax - zp) * scale], half a step of slack): what calibration cut off.

Rows are sorted worst SQNR first; ``depth`` is the op's place in the int8 graph.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, ModelError
from ..runtime.interpreter import preserving_interpreter
from ..spec import ModelSpec, spec_path_for

SKIP_OPS = ("QUANTIZE", "DEQUANTIZE", "DELEGATE")


def _op_outputs(it) -> list[dict]:
    """Compute ops in execution order: {index, op, tensor, name}."""
    details = {t["index"]: t for t in it.get_tensor_details()}
    out = []
    for op in it._get_ops_details():
        if op["op_name"] in SKIP_OPS or not len(op["outputs"]):
            continue
        ti = int(op["outputs"][0])
        if ti < 0 or ti not in details:
            continue
        out.append({"index": int(op["index"]), "op": op["op_name"], "tensor": ti, "name": details[ti]["name"],
                    "dtype": np.dtype(details[ti]["dtype"]), "quantization": details[ti]["quantization"]})
    return out


def match_tensors(q_ops: list[dict], f_ops: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs (int8 op, float op): by tensor name, else by place among the ops of the same type."""
    by_name = {o["name"]: o for o in f_ops}
    pairs = [(q, by_name[q["name"]]) for q in q_ops if q["name"] in by_name]
    if len(pairs) >= max(1, len(q_ops) // 2):
        return pairs
    pairs = []
    seq: dict[str, list[dict]] = {}
    for o in f_ops:
        seq.setdefault(o["op"], []).append(o)
    seen: dict[str, int] = {}
    for q in q_ops:
        k = seen.get(q["op"], 0)
        if k < len(seq.get(q["op"], [])):
            pairs.append((q, seq[q["op"]][k]))
        seen[q["op"]] = k + 1
    return pairs


def _feed(it, img: np.ndarray) -> None:
    d = it.get_input_details()[0]
    x = img[None].astype(np.float32)
    dt = np.dtype(d["dtype"])
    if dt.kind in "iu":
        scale, zp = d["quantization"]
        info = np.iinfo(dt)
        x = np.clip(np.round(x / (scale or 1.0) + zp), info.min, info.max)
    it.set_tensor(d["index"], x.astype(dt))
    it.invoke()


def layer_errors(int8_content: bytes, float_content: bytes, images: np.ndarray) -> list[dict]:
    """Per-layer error rows (worst SQNR first) of the int8 graph against the float graph on ``images``."""
    qi, fi = preserving_interpreter(int8_content), preserving_interpreter(float_content)
    pairs = [(q, f) for q, f in match_tensors(_op_outputs(qi), _op_outputs(fi))
             if q["dtype"].kind in "iu" and f["dtype"].kind == "f"]
    if not pairs:
        raise ModelError("no int8 tensor of the model matches a float tensor of its float sibling (different models?)")
    acc = {id(q): {"sig": 0.0, "err": 0.0, "dot": 0.0, "ff": 0.0, "qq": 0.0, "max": 0.0, "clip": 0, "n": 0}
           for q, _ in pairs}
    for img in images:
        _feed(qi, img)
        _feed(fi, img)
        for q, f in pairs:
            try:
                qv = qi.get_tensor(q["tensor"])
                fv = fi.get_tensor(f["tensor"]).astype(np.float64)
            except ValueError:
                continue
            if qv.shape != fv.shape:
                continue
            scale, zp = q["quantization"]
            scale = scale or 1.0
            dq = (qv.astype(np.float64) - zp) * scale
            a = acc[id(q)]
            e = fv - dq
            a["sig"] += float((fv * fv).sum())
            a["err"] += float((e * e).sum())
            a["dot"] += float((fv * dq).sum())
            a["ff"] += float((fv * fv).sum())
            a["qq"] += float((dq * dq).sum())
            a["max"] = max(a["max"], float(np.abs(e).max() / scale) if e.size else 0.0)
            info = np.iinfo(q["dtype"])
            lo, hi = (info.min - zp - 0.5) * scale, (info.max - zp + 0.5) * scale
            a["clip"] += int(((fv < lo) | (fv > hi)).sum())
            a["n"] += fv.size
    depth = {q["index"]: d for d, (q, _) in enumerate(pairs)}
    rows = []
    for q, f in pairs:
        a = acc[id(q)]
        if not a["n"]:
            continue
        sqnr = 10 * np.log10(a["sig"] / a["err"]) if a["err"] > 0 else float("inf")
        cos = a["dot"] / np.sqrt(a["ff"] * a["qq"]) if a["ff"] > 0 and a["qq"] > 0 else float("nan")
        layer = layer_name(q["name"]) if "/" in q["name"] else f"{q['op'].lower()} (output)"
        rows.append({"depth": depth[q["index"]], "op": q["op"], "tensor": q["name"], "layer": layer,
                     "float_tensor": f["name"], "scale": float(q["quantization"][0]),
                     "zero_point": int(q["quantization"][1]), "sqnr_db": float(sqnr), "cosine": float(cos),
                     "max_abs_err_steps": a["max"], "clipped_share": a["clip"] / a["n"], "values": a["n"]})
    rows.sort(key=lambda r: (r["sqnr_db"], r["depth"]))
    return rows


def layer_name(tensor: str) -> str:
    """The Keras layer a TFLite tensor comes from: ``wbcnet_1/s1a_relu_1/Relu;...`` -> ``s1a_relu``."""
    from ..converters.modes import layer_of

    return layer_of(tensor)


# ---- the float sibling ------------------------------------------------------------------------


def float_candidates(int8_path: Path) -> list[Path]:
    """Where the float sibling of an int8 ``.tflite`` may be, in order of preference."""
    d, stem = int8_path.parent, int8_path.stem
    prefix = stem[: -len("int8")].rstrip("_") if stem.endswith("int8") else stem
    names = [f"{prefix}_float32.tflite", f"{prefix}.keras", f"{prefix}_float16.tflite"] if prefix else []
    names += ["float32.tflite", "model.keras", "float16.tflite"]
    out = []
    for n in names:
        if d / n not in out:
            out.append(d / n)
    return out


def resolve_pair(path: Path, float_path: Path | None = None) -> tuple[Path, Path]:
    """(int8 .tflite, float sibling) for a model dir or an int8 file; ModelError naming what is missing."""
    path = Path(path)
    if path.is_dir():
        int8 = path / "int8.tflite"
        if not int8.is_file():
            found = sorted(p.name for p in path.glob("*int8*.tflite"))
            if len(found) != 1:
                raise ModelError(f"{path}: needs int8.tflite (convert it: edge-wbc convert {path} --mode int8)"
                                 + (f"; or pass one of {found}" if found else ""))
            int8 = path / found[0]
    elif path.is_file():
        int8 = path
    else:
        raise ModelError(f"{path}: no such model file or directory")
    if float_path is not None:
        if not Path(float_path).is_file():
            raise ModelError(f"{float_path}: no such float model file")
        return int8, Path(float_path)
    cands = float_candidates(int8)
    for c in cands:
        if c.is_file():
            return int8, c
    others = ", ".join(c.name for c in cands[1:])
    raise ModelError(f"{int8}: no float sibling to compare with: needs {cands[0]} (or one of {others}; "
                     f"e.g. edge-wbc convert DIR --mode float32), or --float FILE")


def float_content(path: Path, tmp: Path) -> tuple[bytes, str]:
    """float32 ``.tflite`` bytes of the sibling, and what was done to get them."""
    if path.suffix == ".tflite":
        kind = "float16 weights, float32 compute" if "float16" in path.name else "float32"
        return path.read_bytes(), f"{path.name} ({kind})"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError:
        raise ModelError(f"{path}: converting the Keras float sibling needs TensorFlow: pip install 'edge-wbc[train]'"
                         " (or pass --float a float32/float16 .tflite)") from None
    import contextlib
    import io

    from ..converters.modes import convert_float32
    from ..keras_objects import custom_objects

    model = keras.saving.load_model(path, safe_mode=True, compile=False, custom_objects=custom_objects())
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the SavedModel signature
        content = convert_float32(model, None, None)
    (tmp / "float32.tflite").write_bytes(content)
    return content, f"{path.name} converted to float32 .tflite in a temp dir"


def field_windows(spec: ModelSpec, n: int, split: str, data=None) -> np.ndarray:
    """Up to ``n`` fields of the detector's ``split``, resampled to the canonical scale (as it sees them),
    each cut to the centre window of its input (reflect-padded where a field is smaller)."""
    from ..data.fields import parse_fields_dataset
    from ..tasks.fieldsets import canonical_fields

    sources = parse_fields_dataset(spec.dataset)
    per = -(-n // len(sources))
    fields = [f for f in canonical_fields(sources, data, limit=per, seed=0) if f.split == split][:n]
    if not fields:
        raise DataError(f"{spec.dataset}: no {split} fields")
    h, w = spec.input_height, spec.input_width
    out = []
    for f in fields:
        a = f.image
        ph, pw = max(0, h - a.shape[0]), max(0, w - a.shape[1])
        if ph or pw:
            a = np.pad(a, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect")
        y, x = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
        out.append(a[y : y + h, x : x + w])
    return np.stack(out)


def folder_images(folder: Path, spec: ModelSpec, n: int) -> np.ndarray:
    """The first ``n`` image files of ``folder`` (sorted), each resized as ``spec`` says."""
    from ..preprocess import is_image_file, preprocess

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))[:n]
    if not files:
        raise DataError(f"--images {folder}: no image files there")
    return np.stack([preprocess(f, spec) for f in files])


def inspect_model(path: Path, *, float_path: Path | None = None, n: int = 64, split: str = "val",
                  data: str | None = None, images: np.ndarray | None = None, images_dir: Path | None = None) -> dict:
    """The ``edge-wbc inspect`` report for one int8 model: per-layer rows and what they were measured on."""
    from ..data import load_dataset

    int8, fpath = resolve_pair(path, float_path)
    try:
        spec = ModelSpec.load(spec_path_for(int8))
    except Exception as e:  # SpecError or OSError
        raise ModelError(f"{int8}: {e}") from None
    if images is None and images_dir is not None:
        images = folder_images(images_dir, spec, n)
    if images is None:
        if spec.crop == "wbc":  # a field model: the WBC-centred crops of its sources
            from ..tasks.cellsets import load_for_spec as load_dataset  # noqa: F811
        from ..data.fields import is_fields_dataset

        if is_fields_dataset(spec.dataset):  # the field detector: centre windows of canonical-scale fields
            images = field_windows(spec, n, split, data)
            source = f"{spec.dataset} {split}, {len(images)} canonical-scale fields (centre window, seed 0)"
        elif spec.task == "segmentation":  # labels are masks: a seeded random n, not a class-stratified one
            ds = load_dataset(spec.dataset, spec, data=data, seed=spec.split_seed, only=split)
            imgs = ds.split(split).images
            images = imgs[np.sort(np.random.default_rng(0).permutation(len(imgs))[:n])]
            source = f"{spec.dataset} {split}, {len(images)} images (random sample, seed 0)"
        else:
            ds = load_dataset(spec.dataset, spec, data=data, seed=spec.split_seed, only=split, subsample=(n, 0))
            sp = ds.split(split).sample(n, 0)  # stratified, seeded (a split the loader sampled stays as it is)
            images, source = sp.images, f"{spec.dataset} {split}, {len(sp)} images (stratified sample, seed 0)"
    else:
        source = f"{len(images)} given images"
    with tempfile.TemporaryDirectory(prefix="edge-wbc-inspect-") as tmp:
        fc, how = float_content(fpath, Path(tmp))
    rows = layer_errors(int8.read_bytes(), fc, images)
    return {"model": str(int8), "float_reference": str(fpath), "float_how": how, "images": source,
            "n_images": int(len(images)), "layers": rows}


def sqnr_figure(report: dict):
    """The inspect plot: SQNR by depth; with ``report["time"]`` (``--time``) the per-op time's stacked bar
    below it (:func:`edge_wbc.bench.layertime.draw_time_bar`). The caller closes the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(report["layers"], key=lambda r: r["depth"])
    x = [r["depth"] for r in rows]
    y = [min(r["sqnr_db"], 80.0) for r in rows]
    width = max(6, 0.45 * len(rows))
    if report.get("time"):
        from .layertime import draw_time_bar

        fig, (ax, tax) = plt.subplots(2, 1, figsize=(max(width, 8), 6.8), gridspec_kw={"height_ratios": [4, 1.6]})
        draw_time_bar(tax, report["time"])
    else:
        fig, ax = plt.subplots(figsize=(width, 4))
    ax.plot(x, y, "o-")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['layer']}\n{r['op']}" for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel("SQNR (dB, int8 vs float)")
    ax.set_title(f"{Path(report['model']).name}: per-layer SQNR ({report['n_images']} images)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_sqnr(report: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    from ..fileio import save_figure

    fig = sqnr_figure(report)
    save_figure(fig, out, dpi=120)
    plt.close(fig)
