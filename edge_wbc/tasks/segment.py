"""Segmentation task: WBC / nucleus masks at an image's own size, connected components, boxes, mask files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..defaults import CELL_SEGMENTER_UM_PER_PX, DETECTION_MIN_AREA_FRAC, MASK_THRESHOLD, SPECK_FRAC
from ..errors import ImageError
from ..fileio import OutputStems, atomic_open, fsync_dir
from ..preprocess import load_image
from ..runtime.components import component_boxes, drop_small, label_components  # noqa: F401 (re-exported)
from ..runtime.segmenter import TFLiteSegmenter


def boxes_from_map(
    prob: np.ndarray, threshold: float = MASK_THRESHOLD, min_area_frac: float = DETECTION_MIN_AREA_FRAC
) -> list[tuple[list[int], float, int]]:
    """``component_boxes`` of the map above ``threshold``, less components under ``min_area_frac`` of the map."""
    return component_boxes(prob > threshold, min_area_frac * prob.size, prob)


def overlay(img: Image.Image, wbc: np.ndarray, nucleus: np.ndarray | None) -> Image.Image:
    a = np.asarray(img.convert("RGB"), np.float32)
    col = a.copy()
    col[wbc] = 0.55 * col[wbc] + 0.45 * np.array([0, 200, 255], np.float32)
    if nucleus is not None:
        col[nucleus] = 0.45 * col[nucleus] + 0.55 * np.array([255, 0, 160], np.float32)
    return Image.fromarray(col.clip(0, 255).astype(np.uint8))


def save_png(img: Image.Image, path: Path, batch: bool = False) -> None:
    """Atomic PNG. ``batch``: one of many files (fast zlib level 1, no per-file fsync; the caller
    calls :func:`edge_wbc.fileio.fsync_dir` once at the end)."""
    with atomic_open(path, "wb", durable=not batch) as fh:
        img.save(fh, format="PNG", compress_level=1 if batch else 6)


def segment_maps(seg: TFLiteSegmenter, img: Image.Image, threshold: float = MASK_THRESHOLD, tile: bool = False,
                 min_area_frac: float = SPECK_FRAC, window: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """WBC and nucleus masks at the image's size: the whole image resized to the model's input, or
    with ``tile`` windows at native scale (``predict_tiled``).

    WBC components smaller than ``min_area_frac`` of the model's input area, counted at the scale
    the model saw them (specks: platelets, debris), are dropped, and the nucleus map is kept only inside the WBC mask.
    """
    if window is not None and not tile:
        raise ValueError(f"window {window} px applies to tiling only: tile the image, or leave the window out")
    img = img if img.mode == "RGB" else img.convert("RGB")
    maps = seg.predict_tiled(img, window) if tile else seg.predict_image(img)
    labels = seg.spec.labels
    # the floor in image pixels: a share of the tile, or of the whole image when it was resized
    kh, kw = seg.window_shape(window) if tile else (img.height, img.width)
    wbc = drop_small(maps[..., labels.index("wbc")] > threshold, min_area_frac * kh * kw)
    nucleus = (maps[..., labels.index("nucleus")] > threshold) & wbc if "nucleus" in labels else None
    return wbc, nucleus


#: Largest image, in pixels at the segmenter's training scale, that is segmented; larger ones are refused.
MAX_SEGMENT_PIXELS = 4096 * 4096


def segment_scaled(seg: TFLiteSegmenter, img: Image.Image, threshold: float = MASK_THRESHOLD,
                   min_area_frac: float = SPECK_FRAC, um_per_px: float | None = None):
    """WBC and nucleus masks at the image's size, found at the segmenter's training scale; and the
    :class:`~edge_wbc.tasks.scale.FieldScale` used.

    The image's µm per pixel (``um_per_px``, else its red-cell estimate) gives the factor to the
    segmenter's scale (``metrics.um_per_px`` of its model.json, else
    :data:`~edge_wbc.defaults.CELL_SEGMENTER_UM_PER_PX`). An image that is then about one window (a
    single-cell crop, which has too few red cells to estimate from, is taken as one) is resized to the
    model's input, as the training patches were; a larger one is resampled to that scale and segmented
    in windows (``predict_tiled``), and the masks are brought back to the input's size. A field
    flagged ``no_red_cells`` or ``blurred`` gets empty masks.
    """
    from .scale import field_scale

    img = img if img.mode == "RGB" else img.convert("RGB")
    seg_um = float((seg.spec.metrics or {}).get("um_per_px", CELL_SEGMENTER_UM_PER_PX))
    ih, iw = seg.spec.input_height, seg.spec.input_width
    fs = field_scale(img, seg_um * iw / img.width, um_per_px)
    empty = np.zeros((img.height, img.width), bool)
    if fs.unusable:
        return empty, (empty.copy() if "nucleus" in seg.spec.labels else None), fs
    s = fs.um_per_px / seg_um
    W, H = max(1, int(round(img.width * s))), max(1, int(round(img.height * s)))
    if fs.single_cell or (W <= 1.25 * iw and H <= 1.25 * ih):
        wbc, nucleus = segment_maps(seg, img, threshold, False, min_area_frac)
        return wbc, nucleus, fs
    if W * H > MAX_SEGMENT_PIXELS:
        raise ImageError(
            f"{img.width}x{img.height} px is {W}x{H} px at the segmenter's scale, over the limit of "
            f"{MAX_SEGMENT_PIXELS:,} px (edge_wbc.tasks.segment.MAX_SEGMENT_PIXELS): split the field into tiles first"
        )
    small = img.resize((W, H), Image.Resampling.BILINEAR, reducing_gap=2.0)
    wbc, nucleus = segment_maps(seg, small, threshold, True, min_area_frac)

    def up(m):
        return np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(img.size, Image.Resampling.BILINEAR)) > 127

    return up(wbc), (up(nucleus) & up(wbc) if nucleus is not None else None), fs


def segment_file(seg: TFLiteSegmenter, path: Path, out_dir: Path, threshold: float = MASK_THRESHOLD,
                 tile: bool | None = False, min_area_frac: float = SPECK_FRAC, window: int | None = None,
                 um_per_px: float | None = None, stem: str | None = None) -> dict:
    """Masks and overlay of one image: ``tile=None`` at the segmenter's scale (``segment_scaled``),
    ``True`` / ``False`` the expert modes (native-scale windows / the whole image resized); the files are
    ``<stem>.mask.png`` ... (``stem``: the input's own stem by default)."""
    img = load_image(path)
    fs = None
    if tile is None:
        wbc, nucleus, fs = segment_scaled(seg, img, threshold, min_area_frac, um_per_px)
    else:
        wbc, nucleus = segment_maps(seg, img, threshold, tile, min_area_frac, window)
    stem = stem or Path(path).stem
    save_png(Image.fromarray((wbc * 255).astype(np.uint8), "L"), out_dir / f"{stem}.mask.png", batch=True)
    if nucleus is not None:
        save_png(Image.fromarray((nucleus * 255).astype(np.uint8), "L"), out_dir / f"{stem}.nucleus.png", batch=True)
    save_png(overlay(img, wbc, nucleus), out_dir / f"{stem}.overlay.png", batch=True)
    return {
        "file": str(path),
        "width": img.width,
        "height": img.height,
        "tiled": tile,
        "wbc_fraction": float(wbc.mean()),
        "nucleus_fraction": float(nucleus.mean()) if nucleus is not None else None,
        **(fs.as_json() if fs is not None else {}),
    }


@dataclass
class SegmentResult:
    n: int = 0
    bad: list[str] = field(default_factory=list)  # one message per image that could not be used
    files: list[dict] = field(default_factory=list)
    renamed: str | None = None  # a note when inputs of one name got distinct output names (OutputStems)


def segment_paths(seg: TFLiteSegmenter, paths: Iterable[str | Path], out_dir: Path, threshold: float = MASK_THRESHOLD,
                  tile: bool | None = False, min_area_frac: float = SPECK_FRAC, window: int | None = None,
                  um_per_px: float | None = None) -> SegmentResult:
    """``segment_file`` for every image of ``paths`` (files and directories); bad images are listed, not fatal."""
    from ..data import iter_inputs

    if window is not None and not tile:
        raise ValueError(f"window {window} px applies to tiling only: tile the image, or leave the window out")
    res = SegmentResult()
    stems = OutputStems()
    for p in iter_inputs(paths, skip_dir=out_dir):  # a rerun never segments its own masks and overlays
        img_stem = stems(p)
        try:
            res.files.append(segment_file(seg, p, out_dir, threshold, tile, min_area_frac, window, um_per_px,
                                          img_stem))
            res.n += 1
        except ImageError as e:
            stems.release(img_stem)  # nothing written under it
            res.bad.append(str(e))
    res.renamed = stems.note(".mask.png")
    if res.n:
        fsync_dir(out_dir)
    return res
