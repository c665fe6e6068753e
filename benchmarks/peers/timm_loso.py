"""timm classifiers (MobileNetV3-small, EfficientNet-B0) under the field classifier's LOSO protocol (peers venv).

Reads the crops that ``export_data.py crops`` wrote through edge-wbc's own functions (the WBC-centred
crops ``edge-wbc loso`` trains on: 80 px store, 64 px model size) and, for each held-out source S of
pbc128, bccd, wbcseg, trains the model from scratch (``timm.create_model(name, pretrained=False)``:
no weights can be downloaded here) on the other two sources' train splits with edge-wbc's recipe,
ported to NumPy/PIL:

- the same budget: ``--epochs 10 --steps 100 --batch 32``, Adam, lr 2e-3 with cosine decay to 2 %;
- the same sampling: sources drawn equally, classes inside a source by the square root of their
  frequency;
- the same augmentation family ("field"): a random 62-100 % square (30 %: reflect-padded up to 25 %),
  a random resize filter, flips and 90-degree turns, HED stain jitter, hue / saturation / brightness /
  contrast, gamma, blur, noise, JPEG re-encoding;
- the epoch kept that has the best mean per-source val accuracy (the training sources' val splits);
- the input normalization is timm's own (the model's pretrained_cfg mean / std), not edge-wbc's
  per-image standardization.

Then it writes the class probabilities on all of S (as ``edge-wbc loso`` tests) and on S's test split,
float (PyTorch) and int8 (ONNX Runtime static QDQ quantization, calibrated on 300 training crops), the
sizes, and the p50 latency at 1 thread (batch 1, 64 px); and TFLite int8 through litert-torch +
ai-edge-quantizer (no TensorFlow; the path of Ultralytics' LiteRT export), run with ai-edge-litert at 1
thread; an error there is kept in the npz. ``score.py classify`` scores the npz with edge-wbc's summarize().

    nice -n 10 taskset -c 1 python timm_loso.py --model mobilenetv3_small_100 --holdout bccd
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

CACHE = Path(os.environ.get("PEERS_CACHE", Path.home() / ".cache" / "edge-wbc" / "peers"))
SOURCES = ("pbc128", "bccd", "wbcseg")
NCLS = 5
HED_FROM_RGB = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
RGB_FROM_HED = np.linalg.inv(HED_FROM_RGB).astype(np.float32)
FILTERS = (Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.BOX, Image.Resampling.NEAREST)


# ---- edge-wbc's field augmentation, ported from the tf.data version (edge_wbc/training/field.py) ----
def _rgb_to_hsv(x):
    mx, mn = x.max(-1), x.min(-1)
    d = mx - mn
    h = np.zeros_like(mx)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    nz = d > 1e-8
    rm = nz & (mx == r)
    gm = nz & (mx == g) & ~rm
    bm = nz & ~rm & ~gm
    h[rm] = ((g - b)[rm] / d[rm]) % 6
    h[gm] = (b - r)[gm] / d[gm] + 2
    h[bm] = (r - g)[bm] / d[bm] + 4
    s = np.where(mx > 0, d / np.maximum(mx, 1e-8), 0)
    return h / 6.0, s, mx


def _hsv_to_rgb(h, s, v):
    h6 = (h % 1.0) * 6
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((*h.shape, 3), np.float32)
    for k, (a, b, c) in enumerate(choices):
        m = i == k
        out[m] = np.stack([a[m], b[m], c[m]], -1)
    return out


def _blur(x, sigma):
    k = np.arange(-3, 4, dtype=np.float32)
    g = np.exp(-k * k / (2 * sigma * sigma))
    g /= g.sum()
    p = np.pad(x, ((3, 3), (3, 3), (0, 0)), mode="constant")
    y = sum(g[i] * p[:, i:i + x.shape[1]] for i in range(7))
    return sum(g[i] * y[i:i + x.shape[0]] for i in range(7))


def augment(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(s, s, 3) uint8 -> (size, size, 3) float32 0..1."""
    s = img.shape[0]
    side = int(s * rng.uniform(0.62, 1.0))
    y0, x0 = rng.integers(0, s - side + 1, 2)
    x = img[y0:y0 + side, x0:x0 + side]
    if rng.random() < 0.3:
        pad = int(side * rng.uniform(0.0, 0.25))
        if pad:
            x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    x = np.asarray(Image.fromarray(x).resize((size, size), FILTERS[rng.integers(len(FILTERS))]), np.float32) / 255
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if rng.random() < 0.5:
        x = x[::-1]
    x = np.rot90(x, rng.integers(4)).copy()
    od = -np.log(np.clip(x, 1e-3, 1.0))  # HED jitter
    h = od.reshape(-1, 3) @ RGB_FROM_HED
    h = h * rng.uniform(1 - 0.24, 1 + 0.24, 3) + rng.uniform(-0.09, 0.09, 3)
    x = np.exp(-np.maximum(h @ HED_FROM_RGB, 0.0)).reshape(x.shape).astype(np.float32)
    hh, ss, vv = _rgb_to_hsv(np.clip(x, 0, 1))
    x = _hsv_to_rgb(hh + rng.uniform(-0.06, 0.06), np.clip(ss * rng.uniform(0.6, 1.5), 0, 1), vv)
    x = x + rng.uniform(-0.15, 0.15)
    m = x.mean((0, 1), keepdims=True)
    x = (x - m) * rng.uniform(0.7, 1.3) + m
    x = np.clip(x, 1e-3, 1.0) ** np.exp(rng.uniform(-0.35, 0.35))
    if rng.random() < 0.4:
        x = _blur(x, rng.uniform(0.3, 1.6))
    if rng.random() < 0.4:
        x = x + rng.normal(0.0, rng.uniform(0.0, 0.04), x.shape)
    x = np.clip(x, 0.0, 1.0)
    if rng.random() < 0.4:
        buf = io.BytesIO()
        Image.fromarray((x * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(30, 95)))
        x = np.asarray(Image.open(buf), np.float32) / 255
    return np.clip(x, 0.0, 1.0).astype(np.float32)


class BalancedSampler:
    """Sources drawn equally; inside a source, classes by sqrt(frequency) (edge-wbc's balanced_stream)."""

    def __init__(self, y, src, sources, seed):
        self.rng = np.random.default_rng(seed)
        self.per = []
        for s in sources:
            parts = [np.flatnonzero((src == s) & (y == c)) for c in range(NCLS)]
            parts = [p for p in parts if len(p)]
            w = np.sqrt([len(p) for p in parts])
            self.per.append((parts, w / w.sum()))

    def draw(self, n):
        out = []
        for _ in range(n):
            parts, w = self.per[self.rng.integers(len(self.per))]
            p = parts[self.rng.choice(len(parts), p=w)]
            out.append(p[self.rng.integers(len(p))])
        return np.asarray(out)


def time_calls(fn, warmup: int = 20, runs: int = 200) -> tuple[list[float], list[float]]:
    """Wall and thread-CPU milliseconds of ``runs`` calls of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts, cs = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
        cs.append((time.thread_time() - c) * 1e3)
    return ts, cs


def tflite_int8(model, example, out: Path, calib: list) -> Path:
    """float .tflite through litert_torch.convert, then ai-edge-quantizer static int8 calibrated on ``calib``."""
    import litert_torch
    from ai_edge_quantizer import qtyping, quantizer, recipe

    f = out / "model_int8.tflite"
    litert_torch.convert(model.eval(), (example,)).export(str(f))
    (out / "model_float32.tflite").write_bytes(f.read_bytes())
    qt = quantizer.Quantizer(str(f))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
        qt.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key=recipe.AlgorithmName.NO_QUANTIZE)
    result = qt.calibrate({"serving_default": [{"args_0": c} for c in calib]})
    qt.quantize(calibration_result=result).export_model(str(f), overwrite=True)
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilenetv3_small_100")
    ap.add_argument("--holdout", required=True, choices=SOURCES)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import timm
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out or CACHE / "timm" / f"{a.model}_holdout_{a.holdout}")
    out.mkdir(parents=True, exist_ok=True)
    z = np.load(CACHE / "crops" / "cells.npz")
    x80, x64, y, src, split = z["x80"], z["x64"], z["y"], z["src"], z["split"]
    train_sources = tuple(s for s in SOURCES if s != a.holdout)
    tr = np.flatnonzero(np.isin(src, train_sources) & (split == "train"))
    va = np.flatnonzero(np.isin(src, train_sources) & (split == "val"))
    model = timm.create_model(a.model, pretrained=False, num_classes=NCLS)
    cfg = model.pretrained_cfg
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)

    def to_t(xf):  # (N, H, W, 3) float 0..1 -> normalized NCHW
        return (torch.from_numpy(np.ascontiguousarray(xf)).permute(0, 3, 1, 2).float() - mean) / std

    def probs(m, idx, bs=256):
        m.eval()
        res = []
        with torch.no_grad():
            for i in range(0, len(idx), bs):
                res.append(torch.softmax(m(to_t(x64[idx[i:i + bs]] / 255.0)), 1).numpy())
        return np.concatenate(res) if res else np.zeros((0, NCLS), np.float32)

    sampler = BalancedSampler(y[tr], src[tr], train_sources, a.seed)
    rng = np.random.default_rng(a.seed)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    total = a.epochs * a.steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(k, total) / total)))
    loss_fn = torch.nn.CrossEntropyLoss()
    history, best, best_state, best_ep = [], -1.0, None, -1
    t0 = time.time()
    for ep in range(a.epochs):
        model.train()
        losses = []
        for _ in range(a.steps):
            b = tr[sampler.draw(a.batch)]
            xb = to_t(np.stack([augment(x80[i], a.size, rng) for i in b]))
            loss = loss_fn(model(xb), torch.from_numpy(y[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
        pv = probs(model, va)
        per = {s: float((pv[src[va] == s].argmax(1) == y[va][src[va] == s]).mean()) for s in train_sources}
        score = float(np.mean(list(per.values())))
        history.append({"epoch": ep + 1, "loss": float(np.mean(losses)), "val": score, "per_source": per,
                        "seconds": time.time() - t0})
        print(json.dumps(history[-1]), flush=True)
        if score > best:
            best, best_ep = score, ep + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train_s = time.time() - t0
    model.load_state_dict(best_state)
    model.eval()
    torch.save(model.state_dict(), out / "model.pt")
    held_all = np.flatnonzero(src == a.holdout)
    held_test = np.flatnonzero((src == a.holdout) & (split == "test"))
    sets = {"heldout_all": held_all, "heldout_test": held_test}
    sets |= {f"insource_test_{s}": np.flatnonzero((src == s) & (split == "test")) for s in train_sources}
    arrays = {}
    for k, idx in sets.items():
        arrays[f"probs__{k}"] = probs(model, idx)
        arrays[f"idx__{k}"] = idx

    # p50 at 1 thread, batch 1 (PyTorch eager)
    torch.set_num_threads(1)
    one = to_t(x64[held_test[:1]] / 255.0)
    with torch.no_grad():
        ts, cs = time_calls(lambda: model(one))
    meta = {"model": a.model, "pretrained": False, "holdout": a.holdout, "train_sources": list(train_sources),
            "epochs": a.epochs, "steps": a.steps, "batch": a.batch, "lr": a.lr, "size": a.size,
            "train_threads": a.threads, "train_seconds": train_s, "best_epoch": best_ep, "val_mean": best,
            "history": history, "params": int(sum(p.numel() for p in model.parameters())),
            "float32_kb": (out / "model.pt").stat().st_size / 1024, "pytorch_p50_ms_1thread": float(np.median(ts)),
            "pytorch_p50_cpu_ms_1thread": float(np.median(cs)),
            "timm": timm.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "normalization": "timm pretrained_cfg mean/std"}

    # int8: ONNX Runtime static quantization (QDQ, per-channel), 300 calibration crops from the train split
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        fx = out / "model.onnx"
        torch.onnx.export(model, one, fx, input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
        pre = out / "model.pre.onnx"
        quant_pre_process(str(fx), str(pre))
        cal = tr[np.random.default_rng(0).permutation(len(tr))[:300]]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(cal)

            def get_next(self):
                i = next(self.it, None)
                return None if i is None else {"x": to_t(x64[i:i + 1] / 255.0).numpy()}

        fq = out / "model.int8.onnx"
        quantize_static(str(pre), str(fq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(fq), so, providers=["CPUExecutionProvider"])

        def qprobs(idx, bs=256):
            res = []
            for i in range(0, len(idx), bs):
                lg = sess.run(None, {"x": to_t(x64[idx[i:i + bs]] / 255.0).numpy()})[0]
                e = np.exp(lg - lg.max(1, keepdims=True))
                res.append(e / e.sum(1, keepdims=True))
            return np.concatenate(res)

        for k in ("heldout_all", "heldout_test"):
            arrays[f"probs__{k}_int8"] = qprobs(sets[k])
            arrays[f"idx__{k}_int8"] = sets[k]
        o1 = one.numpy()
        ts, cs = time_calls(lambda: sess.run(None, {"x": o1}))
        meta |= {"onnx_float32_kb": fx.stat().st_size / 1024, "ort_int8_kb": fq.stat().st_size / 1024,
                 "ort_int8_p50_ms_1thread": float(np.median(ts)),
                 "ort_int8_p50_cpu_ms_1thread": float(np.median(cs)), "onnxruntime": ort.__version__,
                 "int8_error": None}
    except Exception as e:  # noqa: BLE001 - the row keeps the error
        traceback.print_exc()
        meta["int8_error"] = f"{type(e).__name__}: {e}"
    # TFLite int8: litert-torch (no TensorFlow) + ai-edge-quantizer's static int8 recipe (int8 weights and
    # activations, float32 graph input/output), the path Ultralytics' own LiteRT export takes
    try:
        tq = tflite_int8(model, one, out, [to_t(x64[i:i + 1] / 255.0).numpy() for i in
                                           tr[np.random.default_rng(0).permutation(len(tr))[:300]]])
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(tq), num_threads=1)
        it.allocate_tensors()
        inp, outp = it.get_input_details()[0], it.get_output_details()[0]

        def run1(xn):
            it.set_tensor(inp["index"], xn.astype(np.float32))
            it.invoke()
            return it.get_tensor(outp["index"])

        def tprobs(idx):
            lg = np.concatenate([run1(to_t(x64[i:i + 1] / 255.0).numpy()) for i in idx])
            e = np.exp(lg - lg.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

        for k in ("heldout_all", "heldout_test"):
            arrays[f"probs__{k}_tflite_int8"] = tprobs(sets[k])
            arrays[f"idx__{k}_tflite_int8"] = sets[k]
        o1 = one.numpy()
        ts, cs = time_calls(lambda: run1(o1))
        import litert_torch

        meta |= {"tflite_int8_kb": tq.stat().st_size / 1024, "tflite_int8_p50_ms_1thread": float(np.median(ts)),
                 "tflite_int8_p50_cpu_ms_1thread": float(np.median(cs)), "litert_torch": litert_torch.__version__,
                 "tflite_error": None}
    except Exception as e:  # noqa: BLE001 - the row keeps the error
        traceback.print_exc()
        meta["tflite_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    np.savez(out / "probs.npz", meta=json.dumps(meta), **arrays)
    print(json.dumps({k: v for k, v in meta.items() if k != "history"}, indent=2))
    print(out / "probs.npz")


if __name__ == "__main__":
    main()
