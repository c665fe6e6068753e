"""Side by side: edge-wbc vs the peers a user would pick instead. One command prints both tables.

    python benchmarks/peers/compare.py              # prints the tables from docs/results/peers_*.json
    python benchmarks/peers/compare.py --markdown   # the same tables as Markdown (docs/peers.md)
    PYTHONPATH=. python benchmarks/peers/compare.py --collect   # edge-wbc venv: score the runs in the
        # peers cache with edge-wbc's scorers (score.py), write docs/results/peers_{count,classify}.json

Printing needs only the standard library. A peer that failed to install, train, predict or export
keeps its row, with the error; the other rows still print.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "docs" / "results"
CACHE = Path(os.environ.get("PEERS_CACHE", Path.home() / ".cache" / "edge-wbc" / "peers"))
COUNT_SOURCES = ("bccd:test", "sigtuple:test", "smartphone_pig:test")
CELL_SOURCES = ("pbc128", "bccd", "wbcseg")
#: the rows each table must have; a row with no result says why
COUNT_ROWS = ("edge-wbc count", "YOLOv8n PyTorch", "YOLOv8n ONNX Runtime", "YOLOv8n TFLite int8")
CLASSIFY_ROWS = ("wbc_field", "mobilenetv3_small_100", "efficientnet_b0")
SCRATCH = "from scratch (no pretrained weights)"


# ---- collect (edge-wbc venv) -----------------------------------------------------------------------
def collect() -> None:
    sys.path.insert(0, str(HERE))
    from score import score_classify, score_count

    count = {"rows": {}, "exports": {}}
    preds = CACHE / "preds"
    for name, f in (("edge-wbc count", "edge_wbc.json"), ("YOLOv8n PyTorch", "yolov8n_bccd_pytorch.json"),
                    ("YOLOv8n ONNX Runtime", "yolov8n_bccd_onnx.json"),
                    ("YOLOv8n TFLite int8", "yolov8n_bccd_tflite_int8.json")):
        p = preds / f
        if not p.is_file():
            count["rows"][name] = {"error": f"no predictions ({p.name} not written)"}
            continue
        d = json.loads(p.read_text())
        if d.get("error") and not d.get("sources"):
            count["rows"][name] = {k: v for k, v in d.items() if k != "sources"}
            continue
        count["rows"][name] = score_count(d, "bccd:val" if name.startswith("YOLO") else None)
    for f in sorted((CACHE / "exports").glob("*.json")):
        count["exports"][f.stem] = json.loads(f.read_text())
    for row, key in (("YOLOv8n ONNX Runtime", "yolov8n_bccd_onnx"),
                     ("YOLOv8n TFLite int8", "yolov8n_bccd_tflite_int8")):
        ex = count["exports"].get(key)
        if ex and ex.get("error"):
            count["rows"][row] = {"error": f"export failed: {ex['error']}"}
        elif ex:
            count["rows"][row]["size_kb"] = ex.get("size_kb")
    (RESULTS / "peers_count.json").write_text(json.dumps(count, indent=1, default=float) + "\n")

    cls = {"rows": {}}
    ef = CACHE / "edge_field.json"
    cls["rows"]["wbc_field"] = json.loads(ef.read_text()) if ef.is_file() else {"error": "edge_field.py not run"}
    for m in CLASSIFY_ROWS[1:]:
        folds, errors = {}, {}
        for s in CELL_SOURCES:
            p = CACHE / "timm" / f"{m}_holdout_{s}" / "probs.npz"
            if p.is_file():
                folds[s] = score_classify(p)
            else:
                log = CACHE / "timm" / f"{m}_holdout_{s}.log"
                text = log.read_text() if log.is_file() else "not run"
                done = text.count('"epoch"')
                last = text.strip().splitlines()[-1][:200] if text.strip() else "no output"
                errors[s] = f"not finished: {done} epochs done; {last}" if done else last
        cls["rows"][m] = {"folds": folds, "errors": errors}
    (RESULTS / "peers_classify.json").write_text(json.dumps(cls, indent=1, default=float) + "\n")


# ---- print (standard library only) ------------------------------------------------------------------
def _f(v, nd=3):
    return "—" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _table(head, rows, md):
    if md:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{n}}}" for n in w)
    return "\n".join([fmt.format(*head), fmt.format(*["-" * n for n in w])] + [fmt.format(*r) for r in rows])


def count_table(d: dict, md: bool) -> str:
    head = ["model", "trained on", "source (test)", "fields", "recall", "precision", "count MAE", "exact",
            "p50 ms/field", "p50 CPU ms", "note"]
    rows = []
    for name in COUNT_ROWS:
        r = d.get("rows", {}).get(name, {"error": "no result"})
        trained = ("BCCD + smartphone_pig field detector + stained-nucleus rule, wbc_seg cell U-Net"
                   if name == "edge-wbc count" else f"BCCD train, {SCRATCH}")
        if r.get("error") and not r.get("sources"):
            rows.append([name, trained, "—", "—", "—", "—", "—", "—", "—", "—", f"error: {r['error']}"])
            continue
        for s in COUNT_SOURCES:
            v = r["sources"].get(s)
            if v is None:
                rows.append([name, trained, s, "—", "—", "—", "—", "—", "—", "—", "not run"])
                continue
            note = f"conf ≥ {r['conf']:.2f} (chosen on BCCD val)" if r.get("conf_chosen") else ""
            rows.append([name, trained, s, str(v["fields"]), _f(v["recall"]), _f(v["precision"]),
                         _f(v["count_mae"], 2), _f(v["exact_count_share"]), _f(v["ms_per_field_p50"], 1),
                         _f(v.get("cpu_ms_per_field_p50"), 1), note])
    return _table(head, rows, md)


def _ms(wall, cpu):
    return "—" if wall is None else f"{wall:.3f} ({cpu:.3f})" if cpu is not None else f"{wall:.3f}"


def classify_table(d: dict, md: bool) -> str:
    head = ["model", "init", *[f"LOSO {s} all (int8)" for s in CELL_SOURCES],
            *[f"{s} test (float)" for s in CELL_SOURCES], "params", "float KB", "int8 KB",
            "p50 ms float (CPU)", "p50 ms int8 (CPU)", "note"]
    rows = []
    rs = d.get("rows", {})
    e = rs.get("wbc_field", {"error": "no result"})
    if e.get("error"):
        rows.append(["wbc_field", "—", *["—"] * 6, "—", "—", "—", "—", "—", f"error: {e['error']}"])
    else:
        f, fp = e["folds"], e.get("float16", {})
        rows.append(["wbc_field (fieldnet)", "scratch", *[_f(f[s]["int8_top1_all"]) for s in CELL_SOURCES],
                     *[_f(f[s].get("float_top1_test_current_crops", f[s]["float_top1_test"]))
                       for s in CELL_SOURCES], "206 k",
                     _f(fp.get("size_kb"), 0) + " (fp16)", _f(e["int8"]["size_kb"], 0),
                     _ms(fp.get("p50_ms_1thread"), fp.get("p50_cpu_ms_1thread")) + " fp16 TFLite",
                     _ms(e["int8"]["p50_ms_1thread"], e["int8"]["p50_cpu_ms_1thread"]) + " TFLite",
                     "int8 all: loso.json (previous segmenter's crops); test: the same fold models on the "
                     "current crops (ood_loso.json); size, speed: the shipped bundle (uint8 in/out)"])
    for m in CLASSIFY_ROWS[1:]:
        r = rs.get(m, {"folds": {}, "errors": {"all": "no result"}})
        folds, errs = r.get("folds", {}), r.get("errors", {})
        if not folds:
            rows.append([m, SCRATCH, *["—"] * 6, "—", "—", "—", "—", "—",
                         "error: " + "; ".join(f"{k}: {v}" for k, v in errs.items())])
            continue
        # sizes are the same for every fold; speed from the fold timed on the least loaded machine (the JSON has all)
        a = min(folds.values(), key=lambda f: f.get("pytorch_p50_cpu_ms_1thread") or 1e9)
        q = "tflite_int8" if all("heldout_all_tflite_int8" in folds[s] for s in folds) else \
            "int8" if all("heldout_all_int8" in folds[s] for s in folds) else None

        def top(s, key, folds=folds):
            return _f(folds[s][key]["top1"]) if s in folds and key in folds[s] else "—"

        if q == "tflite_int8":
            kb, p50 = a["tflite_int8_kb"], _ms(a["tflite_int8_p50_ms_1thread"], a["tflite_int8_p50_cpu_ms_1thread"])
            p50 += " TFLite"
            note = "int8: TFLite (litert-torch + ai-edge-quantizer, float in/out)"
        elif q == "int8":
            kb, p50 = a["ort_int8_kb"], _ms(a["ort_int8_p50_ms_1thread"], a["ort_int8_p50_cpu_ms_1thread"]) + " ORT"
            note = f"int8: ONNX Runtime QDQ; TFLite: {a.get('tflite_error')}"
        else:
            kb, p50, note = None, "—", f"int8: {a.get('int8_error')}; TFLite: {a.get('tflite_error')}"
        rows.append([
            m, SCRATCH, *[top(s, f"heldout_all_{q}" if q else "heldout_all") for s in CELL_SOURCES],
            *[top(s, "heldout_test") for s in CELL_SOURCES], f"{a['params'] / 1e6:.2f} M",
            _f(a["float32_kb"], 0) + " (fp32)", _f(kb, 0),
            _ms(a["pytorch_p50_ms_1thread"], a.get("pytorch_p50_cpu_ms_1thread")) + " PyTorch", p50,
            note + (f"; ORT int8 {a['ort_int8_kb']:.0f} KB" if a.get("ort_int8_kb") and q != "int8" else "")
            + ("; missing folds: " + ", ".join(f"{k} ({v})" for k, v in errs.items()) if errs else "")])
    return _table(head, rows, md)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.collect:
        collect()
    out = []
    for title, f, fn in (("Counting WBCs on fields (edge-wbc's scorer: IoU >= 0.5, greedy)", "peers_count.json",
                          count_table),
                         ("Classifying WBC crops, leave-one-source-out (edge-wbc's summarize())",
                          "peers_classify.json", classify_table)):
        p = RESULTS / f
        d = json.loads(p.read_text()) if p.is_file() else {"rows": {}}
        out.append(("### " if a.markdown else "== ") + title + "\n\n" + fn(d, a.markdown))
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
