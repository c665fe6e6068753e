#!/usr/bin/env bash
# ALL-IDB2 as a two-folder tree for `edge-wbc train/cv --dataset DIR`: DIR/blast/ and DIR/normal/ of
# symlinks to ALL-IDB2's images (ImNNN_1.png = lymphoblast, ImNNN_0.png = normal). Nothing is copied.
# Make DIR outside the repository: ALL-IDB2 is research-use only and must never be committed.
#   usage: scripts/allidb2_tree.sh [ALL_IDB2_DIR] [OUT_DIR]
#   default: ${EDGE_WBC_DATA:-../shared/data}/all_idb2 -> /tmp/allidb2_tree
set -euo pipefail
src="${1:-${EDGE_WBC_DATA:-../shared/data}/all_idb2}"
out="${2:-/tmp/allidb2_tree}"
src="$(cd "$src" && pwd)"
[ -d "$src/images" ] || { echo "error: $src/images: no such directory (expected ALL-IDB2's images/ImNNN_Y.png)" >&2; exit 2; }
repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || true)"
out="$(realpath -m "$out")"
if [ -n "$repo" ] && [[ "$out/" == "$repo/"* ]]; then
  echo "error: $out is inside the repository $repo; choose a folder outside it (e.g. /tmp/allidb2_tree)" >&2; exit 2
fi
mkdir -p "$out/blast" "$out/normal"
n1=0; n0=0
for f in "$src"/images/Im*_1.png; do ln -sfn "$f" "$out/blast/$(basename "$f")"; n1=$((n1 + 1)); done
for f in "$src"/images/Im*_0.png; do ln -sfn "$f" "$out/normal/$(basename "$f")"; n0=$((n0 + 1)); done
echo "$out: blast $n1, normal $n0 (symlinks)"
