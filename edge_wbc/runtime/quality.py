"""Image-quality checks before a classifier answers (NumPy and Pillow only, cheap, same on device).

Each check measures the image the model will see (the WBC-centred crop of a field model, resized to
the model's input) and names a flag when a measure is outside what the model's training sources
showed. The limits are fitted on the training sources' crops (:func:`fit_limits`: a margin beyond
the extreme percentiles of every source) and stored in the model's JSON (``metrics.quality``);
:data:`DEFAULT_LIMITS` serves models that have none.

Flags: ``too_small`` (the cell has fewer pixels than the input needs: upsampling above
``max_upsample``), ``grayscale`` (no stain colour), ``exposure`` (clipped highlights or shadows, or
a flat image with no contrast), ``blur`` (focus below every training source), ``noise``
(pixel-level energy above every training source), ``no_wbc`` (the WBC finder found nothing) and
``not_a_single_cell`` (the WBC is a small part of a large image: a smear field given to classify;
CellaVision-style single-cell frames of 300-363 px are below the size rule; in a large image the
WBC finder's box is coarse, so its largest stained nucleus is measured too, see
:func:`edge_wbc.tasks.cells.locate_wbc`: a nucleus under ``min_field_nucleus_share`` of the shorter side,
or several WBC-sized nuclei, is a field; so is a view at least ``min_field_view_um`` wide with at least
``min_field_red_cells`` red cells, :func:`wide_view`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

FLAGS = ("too_small", "grayscale", "exposure", "blur", "noise", "no_wbc", "not_a_single_cell", "low_confidence")


@dataclass(frozen=True)
class QualityLimits:
    max_upsample: float = 4.0  # input side / source pixels side
    min_chroma: float = 12.0  # 95th percentile of max(R,G,B) - min(R,G,B), 0..255
    max_clipped: float = 0.4  # share of pixels at <= 3 or >= 252 (gray)
    min_contrast: float = 3.0  # std of the gray image
    min_focus: float = 3.0  # variance of the 4-neighbour Laplacian of the gray image at the model's input
    max_noise: float = 2.0  # Laplacian variance / image variance (white noise: ~20; cells: < 0.3)
    max_field_wbc_side: float = 0.3  # a WBC box side below this share of the image's shorter side ...
    field_min_side: int = 400  # ... in an image at least this large: a smear field, not a single cell
    #: ... or its largest stained nucleus (:mod:`edge_wbc.runtime.nuclei`, at the red-cell scale) spans less
    #: than this share of the shorter side: 0.5 x the smallest share on the training crops where it could be
    #: measured (0.297; 25 of 450 PBC, BCCD and wbc_seg train crops have a red-cell scale and a nucleus)
    min_field_nucleus_share: float = 0.15
    #: ... or its red-cell scale says it is a wide view: its shorter side spans at least this many µm and it
    #: holds at least ``min_field_red_cells`` red-cell discs. A single-cell frame (CellaVision's 360 px) spans
    #: about 36 µm and some 5-20 red cells; chosen above the training crops (PBC, BCCD, wbc_seg train crops
    #: upscaled to 448 px: 4 of 152 PBC and none of the others reach both) and most BCCD fields of one WBC
    #: (a single-cell frame's view, 20-60 µm, answered as one cell; none of the 192 train fields and 2 of the
    #: 85 val fields are newly flagged by it, their red-cell scale misread at 127-212 µm)
    min_field_view_um: float = 80.0
    min_field_red_cells: float = 60.0

    @classmethod
    def from_dict(cls, d: dict | None) -> QualityLimits:
        if not d:
            return DEFAULT_LIMITS
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = QualityLimits()


def measures(a: np.ndarray) -> dict:
    """The quality measures of an RGB uint8 array at the model's input size."""
    a = np.asarray(a, np.float32)
    g = a @ np.array([0.299, 0.587, 0.114], np.float32)
    lap = g[1:-1, 2:] + g[1:-1, :-2] + g[2:, 1:-1] + g[:-2, 1:-1] - 4 * g[1:-1, 1:-1]
    var = float(g.var())
    return {
        "chroma": float(np.percentile(a.max(-1) - a.min(-1), 95)),
        "clipped": float(((g <= 3) | (g >= 252)).mean()),
        "contrast": float(np.sqrt(var)),
        "focus": float(lap.var()),
        "noise": float(lap.var() / (var + 1.0)),
    }


def image_flags(model_input: np.ndarray, source_side: float | None, input_side: int,
                limits: QualityLimits = DEFAULT_LIMITS) -> list[str]:
    """Flags of the pixels the model sees (``model_input``), resized from ``source_side`` image pixels."""
    m = measures(model_input)
    out = []
    if source_side is not None and source_side > 0 and input_side / source_side > limits.max_upsample:
        out.append("too_small")
    if m["chroma"] < limits.min_chroma:
        out.append("grayscale")
    if m["clipped"] > limits.max_clipped or m["contrast"] < limits.min_contrast:
        out.append("exposure")
    if m["noise"] > limits.max_noise:
        out.append("noise")
    elif m["focus"] < limits.min_focus:
        out.append("blur")
    return out


def find_flags(find, image_size: tuple[int, int], limits: QualityLimits = DEFAULT_LIMITS) -> list[str]:
    """Flags from the WBC finder: nothing found, or a small WBC in a large image (a smear field)."""
    if find is None:
        return []
    if not find.found:
        return ["no_wbc"]
    x0, y0, x1, y1 = find.box
    short = min(image_size)
    if short >= limits.field_min_side and max(x1 - x0, y1 - y0) < limits.max_field_wbc_side * short:
        return ["not_a_single_cell"]
    return []


def wide_view(view_um: float | None, red_cells: float, limits: QualityLimits = DEFAULT_LIMITS) -> bool:
    """A large image whose red cells say it is a wide field of view (``view_um``: its shorter side in µm,
    None without a red-cell scale), not a single-cell frame."""
    return view_um is not None and view_um >= limits.min_field_view_um and red_cells >= limits.min_field_red_cells


def fit_limits(per_source: dict[str, list[dict]], margin: float = 0.5) -> QualityLimits:
    """Limits just outside every training source: ``margin`` x the lowest 0.5th percentile of the
    lower-bounded measures, 1/``margin`` x the highest 99.5th percentile of the upper-bounded ones."""
    lo = {k: min(np.percentile([m[k] for m in ms], 0.5) for ms in per_source.values() if ms)
          for k in ("chroma", "contrast", "focus")}
    hi = {k: max(np.percentile([m[k] for m in ms], 99.5) for ms in per_source.values() if ms)
          for k in ("clipped", "noise")}
    d = DEFAULT_LIMITS
    return QualityLimits(
        max_upsample=d.max_upsample,
        min_chroma=float(min(d.min_chroma, margin * lo["chroma"])),
        max_clipped=float(max(d.max_clipped, hi["clipped"] / margin)),
        min_contrast=float(min(d.min_contrast, margin * lo["contrast"])),
        min_focus=float(margin * lo["focus"]),
        max_noise=float(max(hi["noise"] / margin, 0.5)),
        max_field_wbc_side=d.max_field_wbc_side,
        field_min_side=d.field_min_side,
        min_field_nucleus_share=d.min_field_nucleus_share,
        min_field_view_um=d.min_field_view_um,
        min_field_red_cells=d.min_field_red_cells,
    )

