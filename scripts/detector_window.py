"""Put a trained field detector behind another window size (same weights; the U-Net is fully convolutional).

    python scripts/detector_window.py runs/det --window 288 [--out runs/det288]

then `edge-wbc convert OUT --mode int8`. A larger window covers a field in fewer windows (a 416 px
smartphone field at 0.5 µm/px is 9 windows of 256 px, 4 of 288 px).
"""

from __future__ import annotations

import argparse

from edge_wbc.training.detector import rewindow


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--window", type=int, required=True)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    spec = rewindow(a.model_dir, a.window, a.out)
    print(f"{a.out or a.model_dir}: {spec.input_height}x{spec.input_width} px windows")


if __name__ == "__main__":
    main()
