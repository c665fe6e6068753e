#!/usr/bin/env bash
# The HTML count report in a real browser: Debian's headless Chromium renders it, logs no console error,
# makes no network request, and the figures in the rendered DOM equal the count JSON.
#
# Usage: scripts/report_check.sh [--screenshot PNG] [SMEAR...]
#   SMEAR...          smears to count (default: none given, i.e. the embedded sample's BCCD test smears)
#   --screenshot PNG  also keep a phone-sized screenshot there (docs/count_report.png is one), $SHOT_SIZE
#                     wide,high (default 420,900)
# Needs chromium (apt-get install -y chromium) and edge-wbc importable by $PYTHON (default python3).
# Exit 0: all checks passed; 1: a check failed; 2: chromium missing or bad usage.
set -euo pipefail
PYTHON=${PYTHON:-python3}
SHOT=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --screenshot) SHOT=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || { echo "report_check: chromium not found (apt-get install -y chromium)" >&2; exit 2; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PYTHON" -m edge_wbc count ${ARGS[@]+"${ARGS[@]}"} --json "$T/count.json" --report "$T/report.html" >/dev/null 2>"$T/count.err" \
  || { cat "$T/count.err" >&2; exit 1; }

chrome() {  # chrome OUTFILE-FOR-STDOUT ARGS...: one headless run, its own profile, nothing in the background
  local out=$1; shift
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$(mktemp -d -p "$T")" \
    --enable-logging=stderr --v=0 "$@" >"$out" 2>>"$T/chrome.log"
}
chrome "$T/dom.html" --dump-dom "file://$T/report.html"
if [ -n "$SHOT" ]; then
  chrome /dev/null --hide-scrollbars --window-size="${SHOT_SIZE:-420,900}" --screenshot="$T/shot.png" "file://$T/report.html"
  mkdir -p "$(dirname "$SHOT")" && cp "$T/shot.png" "$SHOT"
fi

"$PYTHON" - "$T" "$SHOT" <<'PY'
import json, re, sys
from html.parser import HTMLParser
from pathlib import Path

t, shot = Path(sys.argv[1]), sys.argv[2]
rep = json.loads((t / "count.json").read_text())
page = (t / "report.html").read_text()
dom = (t / "dom.html").read_text()
log = (t / "chrome.log").read_text(errors="replace")
fails = []

class Grab(HTMLParser):
    def __init__(self):
        super().__init__()
        self.vals, self.cur, self.fields, self.imgs = {}, None, [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "section" and "data-field" in a:
            self.fields.append(int(a["data-cells"]))
        for k in ("data-k", "data-total", "data-percent"):
            if k in a:
                self.cur = f"{k}:{a[k]}"
    def handle_data(self, d):
        if self.cur:
            self.vals[self.cur] = d.strip()
            self.cur = None

g = Grab()
g.feed(dom)
if not g.vals:
    fails.append("the rendered DOM holds none of the report's figures (did the page render?)")
tot, pct = rep["totals"], rep["percent"]
want = {"data-k:fields": str(len(rep["images"])), "data-k:cells": str(sum(tot.values())),
        "data-k:uncertain": str(tot.get("uncertain", 0)),
        "data-k:classified": str(sum(tot.values()) - tot.get("uncertain", 0))}
want |= {f"data-total:{k}": str(v) for k, v in tot.items()}
want |= {f"data-percent:{k}": f"{v:.1f}" for k, v in pct.items()}
for k, v in want.items():
    if g.vals.get(k) != v:
        fails.append(f"{k}: page shows {g.vals.get(k)!r}, JSON says {v!r}")
cells = [len(r.get("cells", [])) for r in rep["images"]]
if g.fields != cells:
    fails.append(f"cells per field: page {g.fields}, JSON {cells}")
if any(not s.startswith("data:image/") for s in g.imgs):
    fails.append("an <img> is not inlined")
if len(g.imgs) != sum(1 for r in rep["images"] if not r.get("error")):
    fails.append(f"{len(g.imgs)} images on the page for {len(rep['images'])} fields")
if re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page):
    fails.append("the page references a network resource")
bad = [ln for ln in log.splitlines() if re.search(r"CONSOLE|Uncaught|net::ERR_|Failed to load resource", ln)]
if bad:
    fails.append("browser console errors: " + " | ".join(bad[:5]))
print(f"report_check: {len(rep['images'])} fields, {sum(tot.values())} cells, {len(want)} figures compared, "
      f"page {len(page.encode()):,} bytes" + (f", screenshot {shot}" if shot else ""))
for f in fails:
    print("report_check: FAIL", f)
sys.exit(1 if fails else 0)
PY
