"""Memory of a long `classify` run: is RSS flat over 10,000 images?

Generates N images (default 10,000) in a temporary folder by re-encoding real PBC JPEGs
(``pbc128/train`` under the data root) with varied JPEG qualities and crops, runs
``python -m edge_wbc classify DIR --csv out.csv`` in a subprocess, and samples that process's
``VmRSS`` from ``/proc/<pid>/status`` every 0.2 s. Progress is read from the size of the CSV's
temp file (rows are streamed into it), so "after warm-up" means "after the first 10 % of the
images", not a wall-clock guess.

    EDGE_WBC_DATA=../shared/data nice python benchmarks/classify_rss.py [--n 10000] [--json out.json]

Prints RSS after warm-up, at the end and at its peak after warm-up, and the growth in %.
Linux only (/proc). The generated images are deleted afterwards; nothing is written into the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image


def data_root(explicit: str | None) -> Path:
    for cand in (explicit, os.environ.get("EDGE_WBC_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if cand and (Path(cand) / "pbc128").is_dir():
            return Path(cand)
    sys.exit("pbc128 not found: pass --data or set EDGE_WBC_DATA")


def make_images(src_root: Path, dest: Path, n: int, seed: int = 0) -> int:
    """n JPEGs: real PBC images re-encoded with qualities 50-98 and random crops (>= 64 px)."""
    srcs = sorted(src_root.rglob("*.jpg"))
    if not srcs:
        sys.exit(f"no JPEGs under {src_root}")
    rng = random.Random(seed)
    for i in range(n):
        src = srcs[i % len(srcs)]
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            cw, ch = rng.randint(min(64, w), w), rng.randint(min(64, h), h)
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            im = im.crop((x, y, x + cw, y + ch))
            sub = dest / f"{i // 1000:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            im.save(sub / f"img_{i:05d}_q.jpg", "JPEG", quality=rng.randint(50, 98))
    return n


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run(images: Path, out_dir: Path, interval: float = 0.2) -> dict:
    out = out_dir / "out.csv"
    cmd = [sys.executable, "-m", "edge_wbc", "classify", str(images), "--csv", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []  # (seconds, rss KiB, bytes of CSV streamed so far)
    while proc.poll() is None:
        r = rss_kb(proc.pid)
        tmps = [f for f in out_dir.iterdir() if f.name.startswith(".out.csv.") and f.name.endswith(".tmp")]
        size = 0
        for f in tmps:
            try:
                size = max(size, f.stat().st_size)
            except FileNotFoundError:
                pass
        if r is not None and tmps:
            samples.append((time.monotonic() - t0, r, size))
        time.sleep(interval)
    err = proc.stderr.read().decode("utf-8", "replace")
    wall = time.monotonic() - t0
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"classify failed (exit {proc.returncode}): {err[-2000:]}")
    total = out.stat().st_size
    rows = sum(1 for _ in out.open(encoding="utf-8")) - 1
    warm = next((s for s in samples if s[2] >= 0.10 * total), None)
    if warm is None or len(samples) < 5:
        raise SystemExit(f"too few RSS samples ({len(samples)}) to judge; run with more images")
    after = [s for s in samples if s[0] >= warm[0]]
    end = samples[-1]
    return {
        "images": rows,
        "wall_s": round(wall, 2),
        "samples": len(samples),
        "interval_s": interval,
        "warmup_at_s": round(warm[0], 2),
        "warmup_progress": round(warm[2] / total, 3),
        "end_progress": round(end[2] / total, 3),
        "rss_start_mb": round(samples[0][1] / 1024, 1),
        "rss_warm_mb": round(warm[1] / 1024, 1),
        "rss_end_mb": round(end[1] / 1024, 1),
        "rss_peak_after_warm_mb": round(max(s[1] for s in after) / 1024, 1),
        "growth_end_pct": round(100 * (end[1] - warm[1]) / warm[1], 2),
        "growth_peak_pct": round(100 * (max(s[1] for s in after) - warm[1]) / warm[1], 2),
        "trace": [(round(t, 2), round(r / 1024, 1), round(b / total, 3)) for t, r, b in samples],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="images to generate and classify")
    ap.add_argument("--data", help="data root (else $EDGE_WBC_DATA, else ../shared/data)")
    ap.add_argument("--json", type=Path, help="also write the result (with the RSS trace) here")
    ap.add_argument("--keep", action="store_true", help="keep the generated images (prints where)")
    args = ap.parse_args(argv)
    if not Path("/proc/self/status").exists():
        sys.exit("needs Linux /proc to sample RSS")
    root = data_root(args.data)
    tmp = Path(tempfile.mkdtemp(prefix="edge-wbc-rss-"))
    try:
        t = time.monotonic()
        make_images(root / "pbc128" / "train", tmp / "images", args.n)
        gen_s = time.monotonic() - t
        (tmp / "out").mkdir()
        res = run(tmp / "images", tmp / "out")
        res["generate_s"] = round(gen_s, 1)
    finally:
        if args.keep:
            print(f"images kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"classified {res['images']:,} images in {res['wall_s']} s ({res['samples']} RSS samples every "
        f"{res['interval_s']} s)"
    )
    print(
        f"RSS after warm-up ({100 * res['warmup_progress']:.0f} % of images, {res['warmup_at_s']} s): "
        f"{res['rss_warm_mb']} MB"
    )
    print(f"RSS at the end ({100 * res['end_progress']:.0f} % of images): {res['rss_end_mb']} MB "
          f"-> growth {res['growth_end_pct']:+.2f} %")
    print(f"peak RSS after warm-up: {res['rss_peak_after_warm_mb']} MB -> growth {res['growth_peak_pct']:+.2f} %")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
