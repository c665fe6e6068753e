"""edge-wbc bench: accuracy, agreement with the float reference, latency, memory and size per variant.

Each variant x thread count runs in its own subprocess (:mod:`edge_wbc.bench.worker`) on the same
real, preprocessed images, so peak RSS is that of a fresh process that loads and runs the variant.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import load_dataset
from ..errors import DataError, ModelError, SpecError
from ..metrics.classification import classification_report
from ..runtime.rule import read_rule
from ..spec import ModelSpec, spec_path_for
from .report import ROW_KEYS


@dataclass
class BenchConfig:
    threads: tuple[int, ...] = (1,)
    runs: int = 200
    warmup: int = 20
    batch: int | None = None
    limit: int | None = None
    split: str = "test"
    dataset: str | None = None
    data: str | None = None
    timeout_s: float = 1800.0
    roofline: bool = False
    seed: int = 0  # of the stratified --limit sample
    clients: tuple[str, ...] = ("edge-wbc",)
    resize: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def discover(paths: list[Path]) -> list[Path]:
    """Files as given; a directory gives its ``*.keras`` (reference) then its ``*.tflite``, sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.glob("*.keras")) + sorted(q for q in p.glob("*.tflite") if not q.name.startswith("."))
            if not found:
                raise ModelError(f"{p}: no .keras or .tflite models in this directory")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise ModelError(f"{p}: no such model file or directory")
    seen, uniq = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            uniq.append(p)
    return uniq


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from ..runtime import interpreter_backend

    try:
        _, backend, version = interpreter_backend()
    except ModelError:
        backend, version = "none", ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "interpreter": backend,
        "interpreter_version": version,
    }


def _gzip_size(path: Path) -> int:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(path.read_bytes())
    return len(buf.getvalue())


def _run_worker(job: dict, timeout: float) -> dict:
    jf = Path(job["out"]).with_suffix(".job.json")
    jf.write_text(json.dumps(job))
    try:
        from ..runtime.interpreter import verbose as _verbose

        verbose = _verbose()
        proc = subprocess.run(
            [sys.executable, "-m", "edge_wbc.bench.worker", str(jf)],
            stdout=subprocess.PIPE,
            stderr=None if verbose else subprocess.PIPE,
            text=True,
            timeout=timeout,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {timeout:.0f}s"}
    out = Path(job["out"])
    if out.is_file():
        return json.loads(out.read_text())
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    return {"status": "failed", "error": f"worker crashed (exit {proc.returncode}): {tail[0]}"}


def _finish(row: dict, res: dict) -> None:
    probs_file = res.pop("probs_file", None)
    row.update({k: v_ for k, v_ in res.items() if k in ROW_KEYS or k in ("interpreter", "batch_note")})
    if res.get("status") == "ok" and probs_file:
        row["_probs"] = np.load(probs_file)
    if row.get("macs") and row.get("latency_ms"):
        row["gmac_per_s"] = row["macs"] / (row["latency_ms"]["p50"] / 1e3) / 1e9


def _image_files(split, tmp: Path) -> tuple[list[str], bool]:
    """The split's original image files (folder datasets), True; else lossless PNGs of its pixels (npz: at the
    model's input, any crop already cut), False."""
    if split.ids and all(Path(i).is_file() for i in split.ids):
        return [str(Path(i).resolve()) for i in split.ids], True
    from PIL import Image

    d = tmp / "png"
    d.mkdir()
    out = []
    for i, im in enumerate(split.images):
        f = d / f"{i:06d}.png"
        Image.fromarray(im.squeeze() if im.shape[-1] == 1 else im).save(f)
        out.append(str(f))
    return out, False


def _load_spec(path: Path) -> ModelSpec:
    try:
        return ModelSpec.load(spec_path_for(path))
    except SpecError as e:
        raise ModelError(str(e)) from None


def _group_key(sp: ModelSpec) -> tuple:
    return (sp.dataset, sp.input_shape, sp.split_seed)


def plan_groups(variants: list[Path], specs: dict, cfg: BenchConfig) -> tuple[list[list[Path]], list[dict]]:
    """Variants grouped by the data they are benched on, and the ones skipped (with the reason).

    Each classifier is benched on its own dataset (its spec's, at its input size and split seed), so
    a directory of models trained on different data (``android_assets/``) gives one group per
    dataset, each with its own reference; ``--dataset`` puts every classifier on that one dataset.
    Segmentation models are skipped: bench scores classifiers (``benchmarks/seg_eval.py`` scores
    segmenters: Dice, IoU). A variant whose model.json cannot be read is a failed row of the first group.
    """
    groups: dict[tuple, list[Path]] = {}
    skipped, broken = [], []
    for v in variants:
        sp = specs[v]
        if isinstance(sp, Exception):
            broken.append(v)
        elif sp.task == "segmentation":
            skipped.append(
                {
                    "variant": v.name,
                    "path": str(v),
                    "task": sp.task,
                    "reason": "segmentation model: bench scores classifiers; score it with "
                    "benchmarks/seg_eval.py (Dice, IoU)",
                }
            )
        else:
            key = ("*", (), 0) if cfg.dataset else _group_key(sp)
            groups.setdefault(key, []).append(v)
    out = list(groups.values())
    if broken:
        if out:
            out[0] = broken + out[0]
        else:
            out = [broken]
    return out, skipped


def run_bench(models: list[Path], cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Bench every variant of ``models``: one report for one group of data; with several groups (models
    trained on different datasets) ``{"groups": [report, ...], "rows": every row, ...}``."""
    variants = discover(models)
    specs: dict[Path, ModelSpec | Exception] = {}
    for v in variants:
        try:
            specs[v] = _load_spec(v)
        except ModelError as e:
            specs[v] = e
    groups, skipped = plan_groups(variants, specs, cfg)
    if not groups:
        raise ModelError("nothing to bench: " + "; ".join(f"{s['variant']}: {s['reason']}" for s in skipped))
    reports = [_run_group(g, specs, cfg, progress) for g in groups]
    if len(reports) == 1:
        rep = reports[0]
        if skipped:
            rep["skipped"] = skipped
        return rep
    names = [r["dataset"] for r in reports]
    for r in reports:  # two groups of one dataset (pbc64 / pbc128): name them by input size too
        r["group"] = r["dataset"] if names.count(r["dataset"]) == 1 else f"{r['dataset']} {r['input']}"
    return {
        "dataset": "per model (see groups)",
        "split": cfg.split,
        "n": sum(r["n"] for r in reports),
        "device": reports[0]["device"],
        "reference": None,
        "reference_note": None,
        "sample": reports[0].get("sample"),
        "roofline": reports[0]["roofline"],
        "config": reports[0]["config"],
        "groups": reports,
        "skipped": skipped,
        "rows": [row | {"group": r["group"]} for r in reports for row in r["rows"]],
    }


def _run_group(variants: list[Path], specs: dict, cfg: BenchConfig, progress) -> dict:
    good = [specs[v] for v in variants if isinstance(specs[v], ModelSpec)]
    if not good:
        raise ModelError("no variant has a readable model.json: " + "; ".join(str(specs[v]) for v in variants))
    base = good[0]
    dataset_name = cfg.dataset or base.dataset
    if not dataset_name:
        raise DataError("the model.json names no dataset: pass --dataset")
    if base.crop == "wbc":  # a field model: the WBC-centred crops of its sources (cached)
        from ..tasks.cellsets import load_for_spec

        if cfg.resize and "," in dataset_name:
            raise DataError(f"--resize re-cuts each image from its file with another filter; the cached crops of "
                            f"{dataset_name} cannot be: pass --dataset FOLDER (a <split>/<class>/ tree of image "
                            "files, e.g. python scripts/pbc100_tree.py /tmp/pbc5 all)")

        ds = load_for_spec(dataset_name, base, data=cfg.data, seed=base.split_seed, only=cfg.split,
                           subsample=(cfg.limit, cfg.seed) if cfg.limit else None)
    else:
        ds = load_dataset(
            dataset_name,
            base,
            data=cfg.data,
            seed=base.split_seed if dataset_name == base.dataset else 0,
            only=cfg.split,
            subsample=(cfg.limit, cfg.seed) if cfg.limit else None,
        )
    split = ds.split(cfg.split).sample(cfg.limit, cfg.seed)  # a split the loader sampled already stays as it is
    if len(split) == 0:
        raise DataError(f"{dataset_name} {cfg.split} split is empty")
    sample = None
    if split.population:
        sample = {
            "kind": "stratified",
            "seed": cfg.seed,
            "n": len(split),
            "of": split.population,
            "per_class": {lab: int((split.labels == i).sum()) for i, lab in enumerate(ds.labels)},
        }
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edge-wbc-bench-") as tmp:
        tmp = Path(tmp)
        img_file = tmp / "images.npy"
        np.save(img_file, split.images)
        resized = {}
        for f in cfg.resize:
            from .clients import pil_filter

            rs = load_dataset(
                dataset_name,
                base.replace(resample=pil_filter(f)),
                data=cfg.data,
                seed=base.split_seed if dataset_name == base.dataset else 0,
                only=cfg.split,
                subsample=(cfg.limit, cfg.seed) if cfg.limit else None,
            )
            rs = rs.split(cfg.split).sample(cfg.limit, cfg.seed)
            if list(rs.ids) != list(split.ids):
                raise DataError(f"--resize {f}: the {cfg.split} split came back in another order")
            resized[f] = tmp / f"images_{f}.npy"
            np.save(resized[f], rs.images)
        files, originals = _image_files(split, tmp) if "mediapipe" in cfg.clients else ([], False)
        rois: dict[tuple, list | None] = {}  # per (crop, crop_model, crop_ratio): the same for every variant
        for vi, v in enumerate(variants):
            sp = specs[v]
            for threads in cfg.threads:
                row = {k: None for k in ROW_KEYS}
                row.update(
                    variant="keras" if v.suffix == ".keras" else v.name,
                    path=str(v),
                    threads=threads,
                    size_bytes=v.stat().st_size,
                    gzip_bytes=_gzip_size(v),
                )
                if not isinstance(sp, Exception):
                    row["_rule"] = read_rule(spec_path_for(v))  # the model's one uncertain rule
                if progress:
                    progress(f"{row['variant']} @ {threads} thread{'s' if threads > 1 else ''}")
                if isinstance(sp, Exception):
                    row.update(status="failed", error=str(sp))
                    rows.append(row)
                    continue
                if tuple(sp.labels) != tuple(ds.labels):
                    row.update(
                        status="failed", error=f"labels {list(sp.labels)} do not match the dataset's {list(ds.labels)}"
                    )
                    rows.append(row)
                    continue
                if sp.input_shape != base.input_shape:
                    row.update(
                        status="failed", error=f"input {sp.input_shape} differs from the bench's {base.input_shape}"
                    )
                    rows.append(row)
                    continue
                job = {
                    "path": str(v),
                    "images": str(img_file),
                    "threads": threads,
                    "runs": cfg.runs,
                    "warmup": cfg.warmup,
                    "batch": cfg.batch,
                    "eval": True,
                    "out": str(tmp / f"v{vi}_t{threads}.json"),
                }
                row["client"] = "edge-wbc"
                _finish(row, _run_worker(job, cfg.timeout_s))
                rows.append(row)
                if v.suffix != ".tflite":
                    continue
                extra = [("client", c) for c in cfg.clients if c != "edge-wbc"] + [("resize", f) for f in cfg.resize]
                for what, name in extra:
                    label = name if what == "client" else f"resize={name}"
                    r2 = {
                        **{k: None for k in ROW_KEYS},
                        "variant": f"{v.name} ({label})",
                        "path": str(v),
                        "threads": threads,
                        "size_bytes": row["size_bytes"],
                        "gzip_bytes": row["gzip_bytes"],
                        "client": name if what == "client" else "edge-wbc",
                        "resize": name if what == "resize" else None,
                    }
                    if progress:
                        progress(f"{r2['variant']} @ {threads} thread{'s' if threads > 1 else ''}")
                    j2 = {**job, "out": str(tmp / f"v{vi}_t{threads}_{name}.json"), "batch": None}
                    if what == "resize":
                        j2["images"] = str(resized[name])
                        res = _run_worker(j2, cfg.timeout_s)
                    elif name == "compiled":
                        res = _run_worker({**j2, "client": "compiled"}, cfg.timeout_s)
                    else:
                        from .clients import mediapipe_rois, run_mediapipe

                        # the WBC square of a crop model, on the original files (npz PNGs are crops already)
                        key = (sp.crop, sp.crop_model, sp.crop_ratio)
                        if key not in rois:
                            rois[key] = mediapipe_rois(files, sp) if originals else None
                        j2.update(model=str(v), files=files, num_classes=len(ds.labels), rois=rois[key])
                        jf = Path(j2["out"]).with_suffix(".job.json")
                        jf.write_text(json.dumps(j2))
                        res = run_mediapipe(jf, cfg.timeout_s)
                    _finish(r2, res)
                    rows.append(r2)
    _score(rows, split.labels, list(split.ids), ds.labels)
    roof = None
    if cfg.roofline:
        from .roofline import measure_roofline

        roof = measure_roofline(threads=cfg.threads)
        for r in rows:
            if r.get("gmac_per_s") and r.get("input_dtype"):
                key = "int8" if r["input_dtype"] in ("uint8", "int8") else "float32"
                peak = roof.get(key, {}).get(str(r["threads"]))
                r["roof_pct"] = 100.0 * r["gmac_per_s"] / peak if peak else None
    ref = _reference(rows, "status")
    return {
        "dataset": dataset_name,
        "split": cfg.split,
        "n": len(split),
        "sample": ds.sample,
        "input": f"{base.input_width}x{base.input_height}",
        "limit_sample": sample,
        "device": machine_info(),
        "reference": ref["variant"] if ref else None,
        "reference_note": _reference_note(ref),
        "roofline": roof,
        "config": {
            "threads": list(cfg.threads),
            "runs": cfg.runs,
            "warmup": cfg.warmup,
            "batch": cfg.batch,
            "limit": cfg.limit,
            "seed": cfg.seed,
            "clients": list(cfg.clients),
            "resize": list(cfg.resize),
        },
        "rows": [
            {k: r.get(k) for k in ROW_KEYS} | ({"batch_note": r["batch_note"]} if r.get("batch_note") else {})
            for r in rows
        ],
    }


#: The float reference, in order of preference: the Keras model, then a float32, then a float16 .tflite.
REFERENCE_ORDER = (
    ("keras", lambda v: v == "keras"),
    ("float32.tflite", lambda v: v.endswith("float32.tflite")),
    ("float16.tflite", lambda v: v.endswith("float16.tflite")),
)


def _reference(rows: list[dict], have: str) -> dict | None:
    """The reference row: the first kind of REFERENCE_ORDER with a usable row (``have``: "_probs" or "status")."""
    for _, is_kind in REFERENCE_ORDER:
        for r in rows:
            if is_kind(r["variant"]) and (("_probs" in r) if have == "_probs" else r.get("status") == "ok"):
                return r
    return None


def _reference_note(ref: dict | None) -> str | None:
    """Why the reference is not the Keras model, when it is not."""
    if ref is None or ref["variant"] == "keras":
        return None
    kind = "float16" if ref["variant"].endswith("float16.tflite") else "float32"
    return (
        f"reference: {ref['variant']} ({kind} TFLite), not the Keras model (no usable .keras row: "
        "TensorFlow is not installed, or no .keras was benched); agreement is measured against it"
    )


def _score(rows: list[dict], y: np.ndarray, ids: list[str], labels: tuple[str, ...]) -> None:
    ref = _reference(rows, "_probs")
    for r in rows:
        p = r.pop("_probs", None)
        if p is None:
            if r["status"] is None:
                r["status"] = "failed"
            continue
        rep = classification_report(y, p, labels)
        r.update(
            accuracy=rep["accuracy"],
            macro_f1=rep["macro_f1"],
            auc_ovr=rep["auc_ovr"],
            ece=rep["ece"],
            per_class_recall={k: v["recall"] for k, v in rep["per_class"].items()},
        )
        rule = r.pop("_rule", None)
        if rule is not None:  # what classify / count / the device would report with the model's rule
            _, k = rule.apply(p)
            kept = k >= 0
            r.update(
                temperature=rule.temperature,
                uncertain_below=rule.threshold,
                uncertain_share=float(1 - kept.mean()),
                accuracy_reported=float((k[kept] == y[kept]).mean()) if kept.any() else None,
            )
        r["_p"] = p
    for r in rows:
        if "_p" in r and (r.get("client") not in (None, "edge-wbc") or r.get("resize")):
            own = next(
                (
                    o
                    for o in rows
                    if o.get("path") == r["path"]
                    and o["threads"] == r["threads"]
                    and "_p" in o
                    and o.get("client") == "edge-wbc"
                    and not o.get("resize")
                ),
                None,
            )
            if own is not None:
                r["client_agreement"] = float((r["_p"].argmax(1) == own["_p"].argmax(1)).mean())
    if ref is not None:
        rp = ref["_p"]
        for r in rows:
            if "_p" in r:
                gap = np.abs(r["_p"] - rp)
                dis = np.flatnonzero(r["_p"].argmax(1) != rp.argmax(1))
                r.update(
                    agreement=float(1 - len(dis) / len(rp)),
                    max_prob_gap=float(gap.max()),
                    mean_prob_gap=float(gap.mean()),
                    disagreements=[ids[i] for i in dis[:20]],
                )
    for r in rows:
        r.pop("_p", None)
        r.pop("_rule", None)


# ---- gates ------------------------------------------------------------------------------------


def bench_models(
    models: list[Path],
    cfg: BenchConfig,
    *,
    baseline: dict | None = None,
    noise: float | None = None,
    gates: dict | None = None,
    json_out: Path | None = None,
    csv_out: Path | None = None,
    markdown: Path | None = None,
    plot_out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """``edge-wbc bench``: run, compare with ``baseline``, check ``gates``, write the outputs asked for.

    The report gets ``compare`` (with a baseline) and ``gate_failures`` (messages; empty = pass), as
    the --json output always had them. ``gates``: max_drop, min_agreement, max_p50_ms, max_size_kb.
    """
    from ..fileio import atomic_write_text
    from .report import P50_NOISE, check_gates, compare, plot, to_csv, to_markdown

    report = run_bench(models, cfg, progress=progress)
    parts = report.get("groups") or [report]
    if baseline is not None:
        base_rows = [row for g in (baseline.get("groups") or [baseline]) for row in g.get("rows", [])]
        for g in parts:
            g["compare"] = compare(g, {"rows": base_rows}, noise=P50_NOISE if noise is None else noise)
        if len(parts) > 1:
            report["compare"] = [d for g in parts for d in g["compare"]]
    for g in parts:
        g["gate_failures"] = check_gates(g, **(gates or {}))
    if len(parts) > 1:
        report["gate_failures"] = [f for g in parts for f in g["gate_failures"]]
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
    if csv_out:
        atomic_write_text(csv_out, to_csv(report))
    if markdown:
        atomic_write_text(
            markdown, "\n".join((f"### {g['group']}\n\n" if len(parts) > 1 else "") + to_markdown(g) for g in parts)
        )
    if plot_out:
        plot(report, plot_out)
    return report
