"""Renderers: result objects of the library functions -> rich tables and lines (stdout) and notes (stderr).

File outputs (JSON, CSV, Markdown, plots) are written by the library, atomically; what is shown on the
terminal is decided here.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from .app import console, out_console


def problems(messages) -> None:
    """One indented line per problem (bad files), on stderr."""
    for m in messages:
        console.print(f"  {escape(m)}", highlight=False, soft_wrap=True)


# ---- train / convert / models -------------------------------------------------------------------
def trained(metrics: dict, out: Path) -> None:
    if "best_val_loss" in metrics and "train_sources" in metrics:  # the field detector
        out_console.print(f"detector on {', '.join(metrics['train_sources'])}: best val loss "
                          f"{metrics['best_val_loss']:.4f} (epoch {metrics['best_epoch']}); score it with "
                          f"benchmarks/count_eval.py after `edge-wbc convert {out} --mode int8` -> {out}")
        return
    if "segmentation" in metrics:
        from ..metrics.segmentation import dice_summary

        out_console.print(dice_summary(metrics["segmentation"]) + f" -> {out}")
        return
    if isinstance(metrics.get("test"), dict):  # a field model: per source
        parts = [f"{s} {m['accuracy']:.4f}" for s, m in metrics["test"].items()]
        if "heldout" in metrics:
            parts.append(f"held out {metrics['heldout']['source']} {metrics['heldout']['accuracy']:.4f}")
        out_console.print(f"test accuracy {', '.join(parts)} -> {out}")
        return
    out_console.print(f"test accuracy {metrics.get('accuracy', float('nan')):.4f}, "
                      f"macro-F1 {metrics.get('macro_f1', float('nan')):.4f} -> {out}")


def cv_done(report: dict, out: Path) -> None:
    from ..training.cv import markdown

    out_console.print(markdown(report), markup=False, highlight=False)
    out_console.print(f"wrote {out / 'cv.json'} and {out / 'cv.md'}", markup=False, highlight=False)


def converted(r: dict, mode: str) -> None:
    extra = f", float ops kept: {', '.join(r['float_ops'])}" if r["float_ops"] and mode == "int8" else ""
    if r.get("per_channel_tensors") is not None and mode == "int8":
        extra += f", per-channel weight tensors: {len(r['per_channel_tensors'])}"
    if r.get("clipped_share") is not None:
        extra += f", clipped activations {100 * r['clipped_share']:.3f} %"
    out_console.print(f"{r['path']}: {r['size_bytes']:,} bytes (gzip {r['gzip_bytes']:,}), I/O {r['input_dtype']}, "
                      f"agreement {r.get('agreement', float('nan')):.4f}{extra}")


def note(msg: str) -> None:
    console.print(msg, highlight=False, soft_wrap=True)


def shipped_list(rows: list[dict]) -> None:
    t = Table("name (-m)", "task", "input", "classes", "trained on", "test score", title="shipped models")
    for r in rows:
        labels = r["labels"]
        t.add_row(r["name"], r["task"], f"{r['input'][1]}x{r['input'][0]}",
                  f"{len(labels)}: {', '.join(labels)}", r["trained_on"], r["score"])
    out_console.print(t)


def model_list(entries) -> None:
    t = Table("name", "task", "description", title="registered architectures (edge-wbc train NAME)")
    for e in entries:
        t.add_row(e.name, e.task, e.description)
    out_console.print(t)


# ---- classify ---------------------------------------------------------------------------------
def classified(result, clf, output: Path | None, json_out: Path | None = None) -> None:
    from ..preprocess import display_name

    if result.bad:
        console.print(f"[yellow]{len(result.bad)} file(s) could not be classified:[/]")
        for _, err in result.bad:
            console.print(f"  {escape(err)}", highlight=False, soft_wrap=True)
    r = clf.rule
    outs = [display_name(p) for p in (output, json_out) if p]
    console.print(f"classified {result.n_ok} image(s) with {clf.path.name} ({clf.backend} {clf.backend_version}), "
                  f"{result.n_uncertain} uncertain (temperature {r.temperature:.3g}, uncertain below {r.threshold:.2f})"
                  + (f" -> {', '.join(outs)}" if outs else ""), highlight=False, soft_wrap=True)


def sample_banner(info: dict, what: str) -> None:
    """The loud line a command prints when it runs on the embedded sample (stderr, so stdout stays data)."""
    from ..data.sample import announce

    console.print(f"[bold yellow]{escape(announce(info, what))}[/]", highlight=False, soft_wrap=True)


# ---- bench ------------------------------------------------------------------------------------
def bench_report(report: dict) -> None:
    """One table per group (models benched on their own dataset), each with its reference and sample."""
    for g in report.get("groups") or [report]:
        _bench_group(g)
    for sk in report.get("skipped") or []:
        console.print(f"[yellow]skipped[/] {escape(sk['variant'])}: {escape(sk['reason'])}", highlight=False,
                      soft_wrap=True)
    if report.get("groups") and "compare" in report:
        _compare_table(report["compare"])
    elif "compare" in report:
        _compare_table(report["compare"])


def _bench_group(report: dict) -> None:
    from ..bench.report import sample_note, table_rows

    head, body = table_rows(report)
    t = Table(*head, title=f"{report['dataset']} {report['split']} ({report.get('input', '')}, n={report['n']}"
                           f"{sample_note(report)}), reference: {report['reference'] or 'none (no float model)'}")
    for row, r in zip(body, report["rows"]):
        t.add_row(*row, style=None if r["status"] == "ok" else "red")
    out_console.print(t)
    if report.get("reference_note"):
        console.print(f"[yellow]note:[/] {escape(report['reference_note'])}", highlight=False, soft_wrap=True)
    if report.get("sample"):
        sample_banner(report["sample"], "bench")
    for r in report["rows"]:
        if r["status"] != "ok":
            console.print(f"[red]{escape(r['variant'])}[/]: {escape(str(r['error']))}", highlight=False, soft_wrap=True)


def _compare_table(rows: list[dict]) -> None:
    ct = Table("variant", "thr", "Δ acc", "Δ p50 ms", "Δ p50 %", "Δ size B", "flags")
    for d in rows:
        if "note" in d:
            ct.add_row(d["variant"], str(d["threads"]), "", "", "", "", d["note"])
        else:
            ct.add_row(d["variant"], str(d["threads"]), f"{d['d_accuracy']:+.4f}", f"{d['d_p50_ms']:+.3f}",
                       f"{d['d_p50_rel']:+.1%}", f"{d['d_size_bytes']:+d}", "; ".join(d["flags"]) or "ok",
                       style="red" if d["regression"] else None)
    out_console.print(ct)


def gate_failures(gates: list[str]) -> None:
    """Gate messages; a failed variant's own error is already under its table, so it is not repeated."""
    for g in gates:
        if ": status failed: " in g:
            continue
        console.print(f"[bold red]gate failed:[/] {escape(g)}", highlight=False, soft_wrap=True)


# ---- segment / count / calibrate ----------------------------------------------------------------
def segmented(result, seg, tile: bool, window: int | None, out: Path) -> None:
    problems(result.bad)
    size = f"{seg.spec.input_width}x{seg.spec.input_height}"
    how = f"tiled in {f'{window}x{window}' if window else size} px windows" if tile else f"resized to {size}"
    if tile is None:
        how = "at the model's training scale (from each image's red cells, or --um-per-px)"
    console.print(f"segmented {result.n} image(s), {how} -> {out}", highlight=False, soft_wrap=True)
    if result.renamed:
        console.print(f"[yellow]note:[/] {escape(result.renamed)}", highlight=False, soft_wrap=True)


def reported(path: Path) -> None:
    from ..preprocess import display_name

    console.print(f"HTML report -> {display_name(path)}", highlight=False)


def counted(result, labels) -> None:
    from ..tasks.count import UNCERTAIN

    report = result.report
    cols = [*labels, UNCERTAIN]
    t = Table("file", "WBCs", *labels, UNCERTAIN)
    names = [Path(r["file"]).name for r in report["images"]]
    if len(set(names)) < len(names):  # a/1.jpg and b/1.jpg: the paths, or two rows would read alike
        names = [r["file"] for r in report["images"]]
    for name, r in zip(names, report["images"]):
        if r.get("error"):  # not read: no count, not a field without WBCs (the reason is listed below)
            t.add_row(name, "error", *["-" for _ in cols], style="red")
            continue
        t.add_row(name, str(len(r["cells"])), *[str(r["counts"].get(k, 0)) for k in cols])
    t.add_row(
        "total %", str(sum(report["totals"].values())), *[f"{report['percent'][k]:.1f}" for k in cols], style="bold"
    )
    out_console.print(t)
    if result.bad:
        console.print(f"[yellow]{len(result.bad)} file(s) could not be counted:[/]", highlight=False)
    problems(result.bad)
    if result.renamed:
        console.print(f"[yellow]note:[/] {escape(result.renamed)}", highlight=False, soft_wrap=True)


def calibrated(r) -> None:
    c = r.choice
    out_console.print(f"{r.spec_path}: temperature {r.temperature:.3f}, uncertain below {c.threshold:.3f} "
                      f"(val n={r.n}: accepted {c.coverage:.1%} at accuracy {c.accuracy:.4f})")


# ---- export -----------------------------------------------------------------------------------
def bundles(items: list[dict], out: Path) -> None:
    t = Table(
        "model", "input", "output", "labels", "test acc", "uncertain <", "size KB", "sha256", title=f"bundle: {out}"
    )
    for b in items:
        acc = b.get("accuracy_this_file")  # a segmenter bundle has neither accuracy nor an uncertain rule
        t.add_row(b["model_file"], f"{b['input']['dtype']} {'x'.join(map(str, b['input']['shape']))}",
                  f"{b['output']['dtype']} {b['output']['activation']}", str(len(b["labels"])),
                  f"{acc['accuracy']:.4f}" if acc else "-",
                  f"{b['uncertain_threshold']:.2f}" if "uncertain_threshold" in b else "-",
                  f"{b['size_bytes'] / 1024:.1f}", b["sha256"][:12])
    out_console.print(t)


# ---- data -------------------------------------------------------------------------------------
def data_info(root: Path, sources, rows: list[dict], env_var: str) -> None:
    console.print("data is looked for in: " + " -> ".join(f"{k} ({v})" for k, v in sources), highlight=False,
                  soft_wrap=True)
    t = Table("dataset", "present", "path", "description", title=f"data root: {root}")
    for r in rows:
        t.add_row(r["dataset"], "yes" if r["present"] else "no", r["path"], r["description"])
    out_console.print(t)
    if not any(r["present"] for r in rows):
        console.print(f"nothing found: set {env_var}, pass --data, or run `edge-wbc data fetch bloodmnist`")


def data_check(result) -> None:
    ds, counts, dups = result.dataset, result.counts, result.near_duplicates
    t = Table("class", *counts.keys(), title=f"{ds.name}: images per split")
    for lab in ds.labels:
        t.add_row(lab, *[str(counts[s][lab]) for s in counts])
    t.add_row("total", *[str(sum(counts[s].values())) for s in counts], style="bold")
    out_console.print(t)
    dt = Table("splits", "near-duplicate pairs", "examples")
    for k, pairs in dups.items():
        dt.add_row(k, str(len(pairs)), "; ".join(f"{a} ~ {b} (d={d})" for a, b, d in pairs[:3]))
    out_console.print(dt)
