"""A probe set of inputs a WBC classifier must not answer, generated on the fly (nothing is committed).

:func:`write_probes` writes, into a folder: uniform noise, solid colours, gradients and photos with
no cells (matplotlib's bundled sample images), whole smear fields, and grayscale, blurred, over- and
under-exposed and tiny versions of real cells. ``benchmarks/probes.py`` runs ``classify`` on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def _photos() -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        return []
    d = Path(matplotlib.get_data_path()) / "sample_data"
    return [p for p in (d / "grace_hopper.jpg", d / "Minduka_Present_Blue_Pack.png", d / "logo2.png") if p.is_file()]


def write_probes(out: str | Path, cells: list[Path], fields: list[Path], seed: int = 0) -> dict[str, list[Path]]:
    """Probe images by kind; ``cells`` are real single-cell images to degrade, ``fields`` whole smears."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds: dict[str, list[Path]] = {}

    def save(kind: str, img: Image.Image, name: str) -> None:
        p = out / f"{kind}_{name}.png"
        img.save(p)
        kinds.setdefault(kind, []).append(p)

    for i in range(8):
        save("noise", Image.fromarray(rng.integers(0, 256, (96 + 16 * i, 96 + 16 * i, 3), dtype=np.uint8)), str(i))
    solids = [(200, 30, 30), (255, 255, 255), (0, 0, 0), (128, 128, 128), (120, 60, 160), (240, 200, 200)]
    for i, c in enumerate(solids):
        save("solid", Image.new("RGB", (100, 100), c), str(i))
    for i in range(4):
        g = np.linspace(0, 255, 128, dtype=np.float32)
        a = np.stack(np.broadcast_arrays(g[None, :], g[:, None], np.full((128, 128), 60.0 * i)), -1)
        save("gradient", Image.fromarray(a.astype(np.uint8)), str(i))
    for p in _photos():
        save("photo", Image.open(p).convert("RGB"), p.stem)
    for p in fields:
        save("field", Image.open(p).convert("RGB"), p.stem)
    for p in cells:
        im = Image.open(p).convert("RGB")
        save("grayscale", im.convert("L").convert("RGB"), p.stem)
        save("blurred", im.filter(ImageFilter.GaussianBlur(max(im.size) / 20)), p.stem)
        save("overexposed", ImageEnhance.Brightness(im).enhance(3.0), p.stem)
        save("underexposed", ImageEnhance.Brightness(im).enhance(0.08), p.stem)
        save("tiny", im.resize((12, 12), Image.Resampling.BILINEAR), p.stem)
    return kinds
