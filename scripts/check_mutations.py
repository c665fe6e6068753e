"""Re-create the hand-made mutations of issue 22 on a scratch copy and check that a test kills each.

Each mutation is a one-line realistic bug (``old`` -> ``new`` in one file). For every one, the project
(edge_wbc/, tests/, android_assets/, pyproject.toml) is copied to a temporary directory, the bug is
applied there (never in this checkout), the killing test is run against the copy, and the mutation
counts as caught when that test fails. A baseline run of all the killing tests on the unmutated copy
must pass first. Prints the table (Markdown) and exits 1 if any mutation survives.

    EDGE_WBC_DATA=../shared/data python scripts/check_mutations.py [--only N,M] [--table out.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
T = "tests/"
M = f"{T}metrics/test_classification_metrics.py::"
PP = f"{T}test_preprocess_geometry.py::"
G = f"{T}bench/test_gates.py::"
CC = f"{T}tasks/test_count_calibrate.py::"
Q = f"{T}runtime/test_quantization.py::"
TF = f"{T}test_tf_free_commands.py::test_runtime_commands_without_tensorflow"

# (what, file, old, new, killing test)
MUTATIONS = [
    ("accuracy inverted (== -> !=)", "edge_wbc/metrics/classification.py",
     "float((y_true == y_pred).mean())", "float((y_true != y_pred).mean())", M + "test_accuracy_by_hand"),
    ("precision and recall swapped", "edge_wbc/metrics/classification.py",
     "    return prec, rec, f1", "    return rec, prec, f1", M + "test_precision_recall_f1_by_hand_and_sklearn"),
    ("AUC off by one in the rank formula", "edge_wbc/metrics/classification.py",
     "ranks[i : j + 1] = (i + j) / 2.0 + 1.0", "ranks[i : j + 1] = (i + j) / 2.0",
     M + "test_binary_auc_by_hand_with_ties"),
    ("ECE without the absolute value", "edge_wbc/metrics/classification.py",
     "abs(correct[m].mean() - conf[m].mean())", "(correct[m].mean() - conf[m].mean())", M + "test_ece_by_hand"),
    ("sigmoid [1-p, p] order reversed", "edge_wbc/runtime/probs.py",
     "np.concatenate([1.0 - p, p], axis=1)", "np.concatenate([p, 1.0 - p], axis=1)",
     M + "test_sigmoid_class_order_is_negative_then_positive"),
    ("macro-F1 computing macro-recall", "edge_wbc/metrics/classification.py",
     "per_class(y_true, y_pred, k)[2][present]", "per_class(y_true, y_pred, k)[1][present]",
     M + "test_macro_f1_is_mean_f1_of_present_classes"),
    ("center_square cropping from the top-left", "edge_wbc/preprocess.py",
     "left, top = (w - s) // 2, (h - s) // 2", "left, top = 0, 0",
     PP + "test_center_square_crops_the_middle_of_a_wide_image"),
    ("one-channel input taking the red channel", "edge_wbc/preprocess.py",
     'a = np.asarray(img.convert("L"), dtype=np.uint8)[..., None]', "a = a[..., :1]",
     PP + "test_one_channel_input_is_luminance_not_red"),
    ("array passthrough skipping the crop", "edge_wbc/preprocess.py",
     'and spec.crop == "none" and c == spec.channels', "and c == spec.channels",
     PP + "test_preprocess_array_crops_even_at_the_spec_size"),
    ("--max-drop passing silently with no reference row", "edge_wbc/bench/report.py",
     "if max_drop is not None and ref is None:", "if False:",
     G + "test_cli_max_drop_without_reference_exits_1"),
    ("p50 gate applied to the Keras row", "edge_wbc/bench/report.py",
     'if max_p50_ms is not None and r["variant"] != "keras" and', "if max_p50_ms is not None and",
     G + "test_max_p50_ms_applies_to_tflite_rows_only"),
    ("CLI passing --max-drop and --min-agreement swapped", "edge_wbc/cli/bench.py",
     'gates = {"max_drop": max_drop, "min_agreement": min_agreement,',
     'gates = {"max_drop": min_agreement, "min_agreement": max_drop,',
     G + "test_cli_max_drop_and_min_agreement_reach_their_own_gates"),
    ("--compare noise margin five times looser", "edge_wbc/bench/report.py",
     "if rel > noise:", "if rel > 5 * noise:", G + "test_compare_at_exactly_the_margin_and_just_past_it"),
    ("bench on the val split while reporting the requested one", "edge_wbc/bench/runner.py",
     "split = ds.split(cfg.split).sample(", 'split = ds.split("val").sample(',
     G + "test_run_bench_measures_the_requested_split"),
    ("temperature multiplying instead of dividing", "edge_wbc/runtime/rule.py",
     "z = np.log(np.clip(probs, 1e-4, 1.0)) / temperature", "z = np.log(np.clip(probs, 1e-4, 1.0)) * temperature",
     CC + "test_apply_temperature_divides_the_logits"),
    ("uncertain rule inverted", "edge_wbc/runtime/rule.py",
     "k = np.where(q[np.arange(len(q)), k] >= self.threshold, k, -1)",
     "k = np.where(q[np.arange(len(q)), k] < self.threshold, k, -1)",
     CC + "test_count_image_labels_boxes_and_the_uncertain_rule_at_its_threshold"),
    ("CSV losing its uncertain column", "edge_wbc/tasks/count.py",
     "        cols = [*labels, UNCERTAIN]\n        with atomic_open",
     "        cols = [*labels]\n        with atomic_open",
     CC + "test_csv_and_json_columns_read_back"),
    ("square crop using min instead of max", "edge_wbc/tasks/count.py",
     "side = max(x1 - x0, y1 - y0)", "side = min(x1 - x0, y1 - y0)", CC + "test_square_crop_geometry"),
    ("choose_threshold ignoring its target", "edge_wbc/tasks/calibrate.py",
     "        if acc >= target:", "        if acc >= CALIBRATE_TARGET:",
     CC + "test_choose_threshold_reaches_its_target"),
    ("export threshold chosen on the test split", "edge_wbc/export/android.py",
     'conf_v, ok_v, _, _ = res["val"]', 'conf_v, ok_v, _, _ = res["test"]',
     CC + "test_export_threshold_is_chosen_on_val_not_test"),
    ("zero-point sign wrong in quantize", "edge_wbc/runtime/model.py",
     "q = np.round(np.asarray(x, np.float32) / scale + zp)", "q = np.round(np.asarray(x, np.float32) / scale - zp)",
     Q + "test_quantize_input_int8_with_zero_point_and_scale"),
    ("zero-point sign wrong in dequantize", "edge_wbc/runtime/model.py",
     "return (y.astype(np.float32) - zp) * np.float32(scale)", "return (y.astype(np.float32) + zp) * np.float32(scale)",
     Q + "test_dequantize_output_with_zero_point_and_scale"),
    ("zero-point sign wrong in both (round trip hides it)", "edge_wbc/runtime/model.py",
     "q = np.round(np.asarray(x, np.float32) / scale + zp)", "q = np.round(np.asarray(x, np.float32) / scale - zp)",
     Q + "test_quantize_input_int8_with_zero_point_and_scale",
     ("return (y.astype(np.float32) - zp) * np.float32(scale)",
      "return (y.astype(np.float32) + zp) * np.float32(scale)")),
    ("import tensorflow added to segment", "edge_wbc/tasks/segment.py",
     "\nimport numpy as np\n", "\nimport numpy as np\nimport tensorflow  # noqa\n", TF),
    ("import tensorflow added to count", "edge_wbc/tasks/count.py",
     "\nfrom PIL import Image, ImageDraw\n", "\nfrom PIL import Image, ImageDraw\nimport tensorflow  # noqa\n", TF),
    ("atomic writes leaving 0600 permissions", "edge_wbc/fileio.py",
     "os.chmod(tmp, 0o666 & ~_UMASK)", "pass", f"{T}test_fileio.py::test_atomic_writes_get_umask_permissions"),
    ("val and test fractions swapped", "edge_wbc/data/loaders.py",
     "n_test = max(1, round(n * fractions[2]))", "n_test = max(1, round(n * fractions[1]))",
     f"{T}data/test_split.py::test_fractions_per_class"),
]


def _copy(dst: Path) -> None:
    for name in ("edge_wbc", "tests", "android_assets"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")


def _pytest(root: Path, tests: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          cwd=root, env=env, capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated mutation numbers (1-based)")
    ap.add_argument("--table", type=Path, help="also write the Markdown table here")
    args = ap.parse_args()
    chosen = [int(x) for x in args.only.split(",")] if args.only else list(range(1, len(MUTATIONS) + 1))
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-wbc-mut-") as tmp:
        root = Path(tmp)
        _copy(root)
        base = _pytest(root, sorted({MUTATIONS[i - 1][4] for i in chosen}))
        if base.returncode != 0:
            print("the killing tests fail on the unmutated code:\n" + base.stdout[-3000:], file=sys.stderr)
            return 2
        for i in chosen:
            what, rel, old, new, test, *more = MUTATIONS[i - 1]
            edits = [(old, new), *more]
            f = root / rel
            orig = f.read_text()
            text = orig
            for o, n in edits:
                if text.count(o) != 1:
                    print(f"#{i} {what}: {rel} has {text.count(o)} copies of {o!r}; update this table", file=sys.stderr)
                    return 2
                text = text.replace(o, n)
            line = orig[: orig.index(old)].count("\n") + 1
            f.write_text(text)
            try:
                r = _pytest(root, [test])
            finally:
                f.write_text(orig)
            caught = r.returncode != 0
            rows.append((i, what, f"{rel}:{line}", test.split("::")[-1], test.split("::")[0], caught))
            print(f"#{i:2d} {'caught  ' if caught else 'SURVIVED'} {what}", flush=True)
    md = ["| # | mutation | file:line | killing test | caught |", "|---|---|---|---|---|"]
    md += [f"| {i} | {w} | `{loc}` | `{t}` ({f}) | {'yes' if c else '**no**'} |" for i, w, loc, t, f, c in rows]
    table = "\n".join(md) + "\n"
    print(table)
    if args.table:
        args.table.write_text(table)
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
