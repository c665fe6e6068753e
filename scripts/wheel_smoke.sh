#!/usr/bin/env bash
# The wheel, as a new user gets it: build an sdist and a wheel (the wheel from the sdist) of this
# checkout, check both with twine, install the wheel with NO extras in a clean venv, and run `bench`,
# `classify`, `count --report` and `segment` on the embedded sample with EDGE_WBC_DATA unset, an empty
# cache and no TensorFlow. Fails if the wheel is over 30 MB or any command fails or prints a wrong figure.
#
# Usage: scripts/wheel_smoke.sh [--keep DIR]   (--keep: build and run in DIR and leave it there)
# Needs python3 with `build` (and `twine`, for the check: both in the dev extra) and access to the
# package index for the wheel's dependencies (numpy, pillow, typer, rich, platformdirs, ai-edge-litert).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
MAX_WHEEL_BYTES=$((30 * 1000 * 1000))
T=""
if [ "${1:-}" = "--keep" ]; then T=$2; mkdir -p "$T"; else T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; fi
log() { printf '[wheel_smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'wheel_smoke: FAIL: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)

# ---- build from the files git knows (tracked + untracked, not ignored): no build/ in the checkout ----
rm -rf "$T/src" "$T/dist" "$T/venv" "$T/run"
mkdir -p "$T/src" "$T/run"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
     [ -e "$f" ] && printf '%s\0' "$f"; done | xargs -0 cp --parents -t "$T/src")
else  # not a git checkout (an unpacked copy): everything but venvs and build outputs
  tar -C "$REPO" --exclude='./.venv*' --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -C "$T/src" -xf -
fi
log "python -m build (sdist, then the wheel from the sdist)"
"$PY" -m build -q --outdir "$T/dist" "$T/src" >"$T/build.log" 2>&1 || { tail -20 "$T/build.log"; die "build failed"; }
WHEEL=$(ls "$T"/dist/edge_wbc-*.whl)
SDIST=$(ls "$T"/dist/edge_wbc-*.tar.gz)
wb=$(stat -c %s "$WHEEL")
log "$(basename "$WHEEL"): $wb bytes; $(basename "$SDIST"): $(stat -c %s "$SDIST") bytes"
[ "$wb" -le "$MAX_WHEEL_BYTES" ] || die "wheel is $wb bytes, over $MAX_WHEEL_BYTES"
if "$PY" -m twine --version >/dev/null 2>&1; then
  "$PY" -m twine check --strict "$T"/dist/* >&2 || die "twine check failed"
else
  log "twine not installed: twine check skipped (pip install twine; it is in the dev extra)"
fi
"$PY" - "$WHEEL" <<'PY' || die "the wheel lacks the shipped models or the sample"
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); names = set(z.namelist())
m = json.loads(z.read("edge_wbc/samples/MANIFEST.json"))
missing = [f["file"] for f in m["files"] if f"edge_wbc/samples/{f['file']}" not in names]
tfl = [n for n in names if n.startswith("edge_wbc/android_assets/") and n.endswith(".tflite")]
print(f"wheel: {len(tfl)} shipped .tflite, sample {len(m['files'])} files ({len(missing)} missing)", file=sys.stderr)
sys.exit(1 if missing or len(tfl) < 5 else 0)
PY

# ---- a clean venv, no extras ---------------------------------------------------------------------
log "clean venv: pip install the wheel (no extras)"
ti=$(date +%s)
"$PY" -m venv "$T/venv"
"$T/venv/bin/pip" install -q --disable-pip-version-check "$WHEEL" || die "pip install of the wheel failed"
log "installed in $(( $(date +%s) - ti )) s"
run() {  # a command as a new user: no data, an empty cache, outside the checkout
  (cd "$T/run" && env -u EDGE_WBC_DATA -u EDGE_WBC_MODELS -u PYTHONPATH HOME="$T/run/home" XDG_CACHE_HOME="$T/run/cache" \
    TF_CPP_MIN_LOG_LEVEL=2 "$T/venv/bin/edge-wbc" "$@")
}
"$T/venv/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is not None)" \
  || die "tensorflow is installed in the clean venv"
run --version | tee "$T/run/version.txt" >&2
grep -q "^edge-wbc [0-9].*, interpreter ai_edge_litert [0-9]" "$T/run/version.txt" || die "--version: $(cat "$T/run/version.txt")"
tb=$(date +%s)
run bench --runs 50 --warmup 5 --json "$T/run/bench.json" >"$T/run/bench.out" 2>"$T/run/bench.err" \
  || { cat "$T/run/bench.out" "$T/run/bench.err"; die "bench failed"; }
log "bench in $(( $(date +%s) - tb )) s"
run classify --csv "$T/run/classify.csv" 2>"$T/run/classify.err" || { cat "$T/run/classify.err"; die "classify failed"; }
run count --json "$T/run/count.json" --report "$T/run/report.html" >/dev/null 2>"$T/run/count.err" \
  || { cat "$T/run/count.err"; die "count failed"; }
run segment --out "$T/run/seg" >/dev/null 2>"$T/run/segment.err" || { cat "$T/run/segment.err"; die "segment failed"; }
"$T/venv/bin/python" - "$T/run" <<'PY' || die "outputs"
import json, sys
from pathlib import Path
r = Path(sys.argv[1]); bad = []
b = json.loads((r / "bench.json").read_text())
rows = {x["variant"]: x for x in b["rows"]}
if set(rows) != {"bloodmnist_float16.tflite", "bloodmnist_int8.tflite"} or any(x["status"] != "ok" for x in rows.values()):
    bad.append(f"bench rows {[(k, v['status']) for k, v in rows.items()]}")
if b["reference"] != "bloodmnist_float16.tflite" or not b.get("reference_note"):
    bad.append(f"bench reference {b['reference']!r} / note {b.get('reference_note')!r}")
if (b.get("sample") or {}).get("n") != 320 or b["n"] != 320:
    bad.append(f"bench sample {b.get('sample')} n={b['n']}")
for cmd in ("bench", "classify", "count", "segment"):
    if f"SAMPLE DATA: {cmd} runs on the embedded sample" not in (r / f"{cmd}.err").read_text():
        bad.append(f"{cmd} did not say it ran on the sample")
n_csv = len((r / "classify.csv").read_text().splitlines()) - 1
c = json.loads((r / "count.json").read_text())
n_masks = len(list((r / "seg").glob("*.mask.png")))
page = (r / "report.html").read_text()
if n_csv != 320 or len(c["images"]) != 4 or n_masks != 8 or f'data-k="fields">4<' not in page:
    bad.append(f"classify rows {n_csv}, count fields {len(c['images'])}, masks {n_masks}")
i8 = rows.get("bloodmnist_int8.tflite", {})
print(f"bench on the sample (n={b['n']}): int8 accuracy {i8.get('accuracy')}, agreement {i8.get('agreement')} "
      f"vs {b['reference']}; classify {n_csv} rows; count {len(c['images'])} fields, "
      f"{sum(c['totals'].values())} WBCs, report {len(page.encode()):,} bytes; segment {n_masks} masks", file=sys.stderr)
for x in bad:
    print("wheel_smoke: FAIL:", x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
log "OK in $(( $(date +%s) - t0 )) s (wheel $wb bytes)"
