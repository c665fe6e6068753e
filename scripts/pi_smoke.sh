#!/usr/bin/env bash
# Raspberry Pi / Linux aarch64 smoke test under QEMU user-mode emulation.
#
# Builds (once, then cached) an arm64 Debian bookworm root with debootstrap + qemu-user-static,
# installs python3/venv/pip in it, builds a wheel of this checkout, installs it in a venv inside the
# root (pip resolves ai-edge-litert for aarch64 from PyPI), then runs on the same inputs:
#   * `edge-wbc classify` on a fixed set of real PBC test images (IMAGES_PER_CLASS per class), and
#   * `edge-wbc bench -m <shipped int8 .tflite> --limit BENCH_LIMIT`
# both inside the aarch64 root and here (x86-64), and compares predictions, probabilities and
# accuracy. Latency under emulation means nothing and is not compared.
#
# Usage: sudo scripts/pi_smoke.sh [--root DIR] [--data DIR] [--alt-runtimes] [--rebuild]
#   --root DIR        the arm64 root (default $PI_ROOT or /tmp/pi-root); kept between runs
#   --data DIR        data root with bloodmnist/ and pbc128/ (default $EDGE_WBC_DATA or ../shared/data)
#   --alt-runtimes    also classify with ai-edge-litert 1.4.0 (+ NumPy 2) and tflite-runtime 2.14 (+ NumPy < 2)
#   --rebuild         delete the cached root first
# Needs root (debootstrap, chroot, mounts) and binfmt_misc support for aarch64 (registered here if
# possible). Data is copied / bind-mounted into the root at run time only, never into the repository.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${PI_ROOT:-/tmp/pi-root}
DATA=${EDGE_WBC_DATA:-$REPO/../shared/data}
SUITE=${PI_SUITE:-bookworm}
MIRROR=${PI_MIRROR:-http://deb.debian.org/debian}
IMAGES_PER_CLASS=${IMAGES_PER_CLASS:-5}
BENCH_LIMIT=${BENCH_LIMIT:-200}
HOST_PYTHON=${HOST_PYTHON:-python3}
ALT=0
REBUILD=0

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --alt-runtimes) ALT=1; shift ;;
    --rebuild) REBUILD=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "pi_smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[pi_smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'pi_smoke: error: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and bind mounts need it)"
DATA=$(cd "$DATA" 2>/dev/null && pwd) || die "data root $DATA not found (set EDGE_WBC_DATA or --data)"
[ -f "$DATA/bloodmnist/bloodmnist.npz" ] || die "$DATA/bloodmnist/bloodmnist.npz not found"
[ -d "$DATA/pbc128/test" ] || die "$DATA/pbc128/test not found"
case "$ROOT" in /|/usr|/usr/*|/etc|/etc/*|"$REPO"|"$REPO"/*) die "refusing to use $ROOT as the arm64 root" ;; esac

# ---- host tools --------------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  log "installing debootstrap qemu-user-static binfmt-support"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static binfmt-support >/dev/null
fi

# aarch64 binaries run through the kernel's binfmt_misc handler. Every program the root runs
# (dpkg maintainer scripts, pip's subprocesses) is an aarch64 ELF, so invoking qemu-aarch64-static
# explicitly for the first process is not enough: the handler must be registered.
binfmt_ok() { [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; }
if ! binfmt_ok; then
  log "registering the qemu-aarch64 binfmt_misc handler"
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  update-binfmts --enable qemu-aarch64 2>/dev/null || update-binfmts --import qemu-aarch64 2>/dev/null || true
fi
binfmt_ok || die "cannot register binfmt_misc for aarch64 here (no /proc/sys/fs/binfmt_misc or no privilege); \
aarch64 programs cannot run in the chroot"

# ---- mounts (undone on exit) -------------------------------------------------------------------
MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_in() {  # mount_in TARGET mount-args...: mount once, remember it for cleanup
  local target=$1; shift
  mkdir -p "$target"
  if ! mountpoint -q "$target"; then mount "$@" "$target"; MOUNTS+=("$target"); fi
}
# pip in the root trusts the CA bundle this host's pip trusts (a TLS-intercepting proxy's CA, if any).
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
ROOT_CA=/opt/pi-smoke/host-ca.pem
in_root() {  # run a bash command line inside the arm64 root
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TF_CPP_MIN_LOG_LEVEL=2 PIP_CERT=$ROOT_CA SSL_CERT_FILE=$ROOT_CA /bin/bash -c "$1"
}

# ---- the arm64 root (cached; each stage leaves a marker) ----------------------------------------
if [ "$REBUILD" = 1 ] && [ -d "$ROOT" ]; then
  log "removing $ROOT"
  for m in $(awk -v r="$ROOT" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  rm -rf --one-file-system "$ROOT"
fi
mkdir -p "$ROOT"
if [ ! -e "$ROOT/.pi_smoke_stage1" ]; then
  log "debootstrap stage 1: $SUITE arm64 from $MIRROR into $ROOT"
  rm -rf --one-file-system "${ROOT:?}"/*
  debootstrap --arch=arm64 --foreign --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
  touch "$ROOT/.pi_smoke_stage1"
fi
# The static emulator inside the root: needed where the binfmt entry lacks the F (fix-binary) flag.
install -m 0755 "$(command -v qemu-aarch64-static)" "$ROOT/usr/bin/qemu-aarch64-static"
if [ ! -e "$ROOT/.pi_smoke_stage2" ]; then
  # The second stage mounts (and on exit unmounts) /proc and /sys in the root itself.
  log "debootstrap stage 2 (under emulation; several minutes)"
  chroot "$ROOT" /debootstrap/debootstrap --second-stage
  touch "$ROOT/.pi_smoke_stage2"
fi
mount_in "$ROOT/proc" -t proc proc
# No /sys on purpose: under qemu-user, /sys/devices/system/cpu describes this x86 host, and
# LiteRT 2.3.0's CPU detection (cpuinfo, for XNNPACK) segfaults on it while loading a model
# (seen here: "qemu: uncaught target signal 11"). Without /sys it logs "Error in cpuinfo" and
# falls back to generic aarch64 kernels. A real Pi has its own /sys and is unaffected.
mount_in "$ROOT/dev" --bind /dev
mount_in "$ROOT/dev/pts" --bind /dev/pts
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/opt/pi-smoke"
if [ -r "$HOST_CA" ]; then cp -L "$HOST_CA" "$ROOT$ROOT_CA"; else cp -L "$ROOT/etc/ssl/certs/ca-certificates.crt" "$ROOT$ROOT_CA" 2>/dev/null || true; fi
if [ ! -e "$ROOT/.pi_smoke_packages" ]; then
  log "apt-get install python3 python3-venv python3-pip in the root"
  in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip ca-certificates >/dev/null"
  touch "$ROOT/.pi_smoke_packages"
fi
log "root: $(in_root 'uname -m; python3 --version' | tr '\n' ' ')"

# ---- wheel of this checkout --------------------------------------------------------------------
# Built from a copy of the files git knows (tracked + untracked, not ignored), so build/ and
# *.egg-info never land in the working tree.
WORK=$ROOT/opt/pi-smoke
rm -rf "$WORK/src" "$WORK/dist" "$WORK/out" "$WORK/images"
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/out" "$WORK/images"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
   [ -e "$f" ] && printf '%s\0' "$f"; done | xargs -0 cp --parents -t "$WORK/src")
log "building the wheel"
"$HOST_PYTHON" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/src" >/dev/null
WHEEL=$(ls "$WORK"/dist/edge_wbc-*.whl)
n_tfl=$(unzip -l "$WHEEL" | grep -c 'edge_wbc/android_assets/.*\.tflite$' || true)
[ "$n_tfl" -ge 1 ] || die "$WHEEL has no edge_wbc/android_assets/*.tflite: the runtime's default models would be missing"
log "$(basename "$WHEEL"): $n_tfl .tflite file(s) under edge_wbc/android_assets/"
unzip -l "$WHEEL" | grep -q 'edge_wbc/samples/MANIFEST.json$' || die "$WHEEL has no edge_wbc/samples/ (the embedded sample)"

# ---- install in a venv inside the root ---------------------------------------------------------
W=/opt/pi-smoke/dist/$(basename "$WHEEL")
log "pip install the wheel in /opt/venv (aarch64; dependencies from PyPI)"
in_root "[ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv
  /opt/venv/bin/pip install -q --disable-pip-version-check '$W' &&
  /opt/venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps '$W'"
in_root "/opt/venv/bin/pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(ai-edge-litert|numpy|pillow|edge-wbc) '" >&2

# ---- the fixed image set and the data ------------------------------------------------------------
# The first IMAGES_PER_CLASS test JPEGs of every class (sorted by name): copied into the root
# for this run only, and read from there on both sides.
for d in "$DATA"/pbc128/test/*/; do
  c=$(basename "$d"); mkdir -p "$WORK/images/$c"
  mapfile -t files < <(find "$d" -maxdepth 1 -name '*.jpg' | LC_ALL=C sort)
  cp -t "$WORK/images/$c" "${files[@]:0:$IMAGES_PER_CLASS}"
done
N_IMG=$(find "$WORK/images" -name '*.jpg' | wc -l)
mount_in "$ROOT/mnt/data" --bind "$DATA"
mount -o remount,bind,ro "$ROOT/mnt/data" 2>/dev/null || true

# ---- run: aarch64 (emulated) ---------------------------------------------------------------------
PI_MODEL=$(in_root "/opt/venv/bin/python -c 'from edge_wbc.assets import default_classifier; print(default_classifier())'")
BENCH_ARGS="--limit $BENCH_LIMIT --runs 20 --warmup 2"
log "aarch64: edge-wbc classify ($N_IMG images) and bench ($PI_MODEL)"
in_root "cd /opt/pi-smoke/images && /opt/venv/bin/edge-wbc classify . --csv /opt/pi-smoke/out/pi_classify.csv"
in_root "EDGE_WBC_DATA=/mnt/data /opt/venv/bin/edge-wbc bench -m '$PI_MODEL' $BENCH_ARGS \
  --json /opt/pi-smoke/out/pi_bench.json" >&2
in_root "sha256sum '$PI_MODEL'" | awk '{print $1}' > "$WORK/out/pi_model.sha256"

if [ "$ALT" = 1 ]; then
  # The other aarch64 interpreters a Pi user may have: ai-edge-litert 1.4.0 (the last manylinux_2_17
  # build) with NumPy 2, and tflite-runtime 2.14 (its last release) which needs NumPy < 2.
  for alt in "litert14:ai-edge-litert==1.4.0 numpy>=2:ai_edge_litert" "tflrt214:tflite-runtime==2.14.0 numpy<2:tflite_runtime"; do
    IFS=: read -r name reqs backend <<<"$alt"
    log "aarch64 alternative runtime $name: $reqs"
    in_root "[ -x /opt/venv-$name/bin/python ] || python3 -m venv /opt/venv-$name
      /opt/venv-$name/bin/pip install -q --disable-pip-version-check $(printf "'%s' " $reqs) pillow typer rich platformdirs flatbuffers &&
      /opt/venv-$name/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps '$W'"
    in_root "/opt/venv-$name/bin/pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(ai-edge-litert|tflite-runtime|numpy) '" >&2
    in_root "cd /opt/pi-smoke/images && EDGE_WBC_INTERPRETER=$backend /opt/venv-$name/bin/edge-wbc classify . \
      --csv /opt/pi-smoke/out/pi_classify_$name.csv" || log "$name: classify failed (see above)"
  done
fi

# ---- run: x86-64 here, same images, same model file ----------------------------------------------
HOST_MODEL=$(cd "$REPO" && "$HOST_PYTHON" -c 'from edge_wbc.assets import default_classifier; print(default_classifier())')
sha256sum "$HOST_MODEL" | awk '{print $1}' > "$WORK/out/host_model.sha256"
log "x86-64: edge-wbc classify and bench ($HOST_MODEL)"
(cd "$WORK/images" && "$HOST_PYTHON" -m edge_wbc classify . --csv "$WORK/out/host_classify.csv")
EDGE_WBC_DATA=$DATA "$HOST_PYTHON" -m edge_wbc bench -m "$HOST_MODEL" $BENCH_ARGS --json "$WORK/out/host_bench.json" >&2

# ---- compare -------------------------------------------------------------------------------------
"$HOST_PYTHON" - "$WORK/out" <<'PY' | tee "$WORK/out/summary.txt"
import csv, glob, json, os, sys

out = sys.argv[1]

def read(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = [k for k in rows[0] if k not in ("file", "prediction", "confidence", "error")]
    return {r["file"]: r for r in rows}, labels

host, labels = read(f"{out}/host_classify.csv")
sha = {s: open(f"{out}/{s}_model.sha256").read().strip() for s in ("pi", "host")}
print(f"model sha256: aarch64 {sha['pi'][:16]}..., x86-64 {sha['host'][:16]}..., "
      f"{'same file' if sha['pi'] == sha['host'] else 'DIFFERENT FILES'}")
ok = sha["pi"] == sha["host"]
for path in sorted(glob.glob(f"{out}/pi_classify*.csv")):
    pi, _ = read(path)
    common = sorted(set(pi) & set(host))
    same = sum(pi[f]["prediction"] == host[f]["prediction"] for f in common)
    diff = max((abs(float(pi[f][c]) - float(host[f][c])) for f in common for c in labels), default=float("nan"))
    truth = sum(host[f]["prediction"] == os.path.normpath(f).split(os.sep)[0] for f in common)
    tag = os.path.basename(path)[len("pi_classify"):-4].lstrip("_") or "ai-edge-litert (default install)"
    print(f"classify [{tag}]: {len(pi)} images on aarch64, {len(host)} on x86-64, "
          f"{same}/{len(common)} identical predictions, max |prob diff| {diff:.2e}, "
          f"x86-64 correct vs folder {truth}/{len(common)}")
    ok &= same == len(common) == len(host) == len(pi)
bench = {}
for side in ("pi", "host"):
    r = json.load(open(f"{out}/{side}_bench.json"))
    row = r["rows"][0]
    bench[side] = row["accuracy"]
    dev = r["device"]
    print(f"bench {side:4s}: {row['variant']} {r['dataset']} {r['split']} n={r['n']} accuracy {row['accuracy']:.4f} "
          f"macro-F1 {row['macro_f1']:.4f} status {row['status']} ({dev['machine']}, {dev['interpreter']} "
          f"{dev['interpreter_version']}, numpy {dev['numpy']}, python {dev['python']})")
ok &= bench["pi"] == bench["host"]
print("RESULT:", "aarch64 matches x86-64" if ok else "MISMATCH between aarch64 and x86-64")
sys.exit(0 if ok else 1)
PY
log "outputs in $WORK/out (removed with the images on the next run)"
