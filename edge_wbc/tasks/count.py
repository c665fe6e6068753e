"""Smear -> WBC differential: find WBCs with a U-Net, classify each crop, count.

By default every field is brought to the models' training scales first (``SmearCounter``: the red-cell
scale estimate of :mod:`edge_wbc.tasks.scale`, or ``um_per_px``), single-cell crops go to the cell
segmenter, and fields that are not smears get no cells and a flag. The expert modes of before remain:
``tile=False``, the ``unet`` smear model (trained on BCCD smears with their VOC WBC boxes as targets)
on the whole smear resized to its input; ``tile=True``, the cell segmenter in windows at native scale
(``TFLiteSegmenter.predict_tiled``). Components of the WBC map above 0.5, less specks, become boxes,
scaled to the original image. Each box is classified by :meth:`SmearCounter.classify_cell` (a square
crop of side max(w, h) around its centre, as the BCCD crops are). A crop whose calibrated confidence is
below the classifier's threshold (its one calibrated rule, :mod:`edge_wbc.runtime.rule`) is reported as
``uncertain``, never forced into a class.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

from ..defaults import (
    CELL_SEGMENTER_UM_PER_PX,
    DETECTOR_UM_PER_PX,
    FIELD_FALLBACK_UM,
    MASK_THRESHOLD,
    MIN_ANSWERED,
    SMEAR_DETECTOR_UM_PER_PX,
    SPECK_FRAC,
    WBC_UM,
)
from ..errors import ImageError, ModelError
from ..fileio import atomic_open, atomic_write_text, fsync_dir
from ..preprocess import load_image, resize_image
from ..runtime import TFLiteClassifier, TFLiteSegmenter
from ..runtime.nuclei import NUCLEI_DETECTOR, NucleusRule, covered
from ..runtime.rule import UNCERTAIN
from .fieldsets import detect_nuclei_at, detect_wbcs, is_field_detector, resample
from .scale import check_um_per_px, field_scale
from .segment import boxes_from_map, component_boxes

#: A field within this factor of the smear detector's own field (its input at its training scale) goes to the
#: smear detector whole, as it was trained; any other to the cell segmenter in windows at its scale. The
#: red-cell estimate's spread on BCCD test smears is p10-p90 0.65-1.25 of the truth, with tails to 0.54
#: and 1.87 (``benchmarks/scale_eval.py``); 2 keeps all 72 there.
SAME_SCALE = 2.0

#: Largest field, in pixels at the detector's scale, that is detected (in windows); larger ones are refused.
MAX_DETECT_PIXELS = 4096 * 4096


def model_um_per_px(spec, default: float) -> float:
    """The µm per pixel a model's input sees: ``metrics.um_per_px`` of its model.json, else ``default``."""
    return float((spec.metrics or {}).get("um_per_px", default))


def square_crop(img: Image.Image, box: list[int]) -> Image.Image:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return img.crop((left, top, left + side, top + side))  # outside the image: black padding


def detect_size(img: Image.Image, s: float) -> tuple[int, int]:
    """(W, H) of ``img`` resampled by ``s`` to a detector's scale; an ImageError over :data:`MAX_DETECT_PIXELS`."""
    W, H = max(1, int(round(img.width * s))), max(1, int(round(img.height * s)))
    if W * H > MAX_DETECT_PIXELS:
        raise ImageError(
            f"{img.width}x{img.height} px is {W}x{H} px at the detector's scale, over the limit of "
            f"{MAX_DETECT_PIXELS:,} px (edge_wbc.tasks.count.MAX_DETECT_PIXELS): split the field into tiles first"
        )
    return W, H


class SmearCounter:
    """Find, classify and count the WBCs of a field.

    ``tile=None`` (the default) works at the models' training scales: the field's µm per pixel
    (``um_per_px`` given, else estimated from its red cells, :func:`edge_wbc.tasks.scale.field_scale`)
    says how large the field is at the smear detector's scale (``detector_um_per_px``). A field within
    :data:`SAME_SCALE` of the detector's own field (its input at that scale: a BCCD field) is resized to
    its input, as it was trained. Any other is resampled to the cell segmenter's training scale
    (:data:`~edge_wbc.defaults.CELL_SEGMENTER_UM_PER_PX`), which runs in windows of its input size
    (``predict_tiled``). Boxes are reported in the input's pixels. An image with too few red cells that
    is small (a single-cell crop) goes to the cell segmenter (``cell_model``) as a whole, and its largest
    WBC component is the one cell. A larger image without red cells, or a blurred field, gets no cells
    and a flag. ``tile=True`` / ``False`` are the expert modes of before: the cell segmenter in
    native-scale windows, or the whole field resized to the detector's input, whatever the scale.
    """

    #: the field detector behind a smaller window (``small_detector``), or None
    small_det: TFLiteSegmenter | None = None

    def __init__(
        self,
        detector: str | Path,
        classifier: str | Path,
        threads: int = 1,
        threshold: float = MASK_THRESHOLD,
        uncertain_below: float | None = None,
        tile: bool | None = None,
        window: int | None = None,
        um_per_px: float | None = None,
        cell_model: str | Path | None = None,
        detector_um_per_px: float | None = None,
        nuclei: bool = True,
        small_detector: str | Path | None = None,
    ):
        if window is not None and not tile:
            raise ValueError(f"window {window} px applies to tiled detection only")
        self.um_per_px = check_um_per_px(um_per_px) if um_per_px is not None else None
        self.tile, self.window = tile, window
        #: the rule-based nucleus detector (:mod:`edge_wbc.runtime.nuclei`: no model, the canonical scale)
        self.nuclei = str(detector) == NUCLEI_DETECTOR
        if self.nuclei:
            if tile is not None:
                raise ValueError(f"detector {NUCLEI_DETECTOR!r} works at the canonical scale only: leave out "
                                 "--tile / --no-tile (they choose their own U-Nets)")
            self.det = None
            self.det_um, self.field_detector = detector_um_per_px or DETECTOR_UM_PER_PX, False
        else:
            self.det = TFLiteSegmenter(detector, num_threads=threads)
            if "wbc" not in self.det.spec.labels:
                raise ModelError(f"{self.det.path}: detector labels {list(self.det.spec.labels)} have no 'wbc' map")
            self.det_um = detector_um_per_px or model_um_per_px(self.det.spec, SMEAR_DETECTOR_UM_PER_PX)
            #: the multi-source field detector (trained on fields at one canonical scale, run in windows there)
            self.field_detector = is_field_detector(self.det)
        # the field detector behind a smaller window, for a field that fits in one (the default's: 128 px)
        if small_detector is not None and self.field_detector and tile is None:
            self.small_det = TFLiteSegmenter(small_detector, num_threads=threads)
            if not is_field_detector(self.small_det):
                raise ModelError(f"{self.small_det.path}: small-window detector is not a field detector")
            um = [model_um_per_px(d.spec, SMEAR_DETECTOR_UM_PER_PX) for d in (self.det, self.small_det)]
            if um[0] != um[1]:
                raise ModelError(f"{self.small_det.path}: small-window detector works at {um[1]} µm/px, "
                                 f"{self.det.path.name} at {um[0]}: they must share one scale")
        #: with the field detector: also the stained nuclei it missed (``nuclei=False``: the model alone)
        self.add_nuclei = bool(nuclei) and self.field_detector and tile is None
        self.nuclei_rule = NucleusRule()
        self.cell = TFLiteSegmenter(cell_model, num_threads=threads) if cell_model is not None else None
        if self.cell is not None and "wbc" not in self.cell.spec.labels:
            raise ModelError(f"{self.cell.path}: cell model labels {list(self.cell.spec.labels)} have no 'wbc' map")
        self.cell_um = model_um_per_px(self.cell.spec, CELL_SEGMENTER_UM_PER_PX) if self.cell is not None else None
        self.clf = TFLiteClassifier(classifier, num_threads=threads)
        rule = self.clf.rule
        if uncertain_below is not None:
            rule = dataclasses.replace(rule, threshold=float(uncertain_below), source="--uncertain-below")
        self.rule = rule
        self.temperature, self.uncertain_below = rule.temperature, rule.threshold
        from .cells import CellAnswerer

        self.answerer = CellAnswerer(self.clf, rule=rule)
        self.threshold = threshold

    def _resized(self, img: Image.Image) -> list[tuple[list[int], float]]:
        c = self.det.spec.labels.index("wbc")
        prob = self.det.predict(resize_image(img, self.det.spec)[None])[0][..., c]
        sx, sy = img.width / self.det.spec.input_width, img.height / self.det.spec.input_height
        out = []
        for (x0, y0, x1, y1), p, _ in boxes_from_map(prob, self.threshold):
            out.append(([int(round(x0 * sx)), int(round(y0 * sy)), min(img.width, int(round(x1 * sx))),
                         min(img.height, int(round(y1 * sy)))], p))
        return out

    def detect(self, img: Image.Image, um_per_px: float | None = None) -> list[tuple[list[int], float]]:
        """(box, mean detection probability) of each WBC; ``um_per_px`` for the canonical (auto) mode."""
        if self.nuclei:
            return self.nucleus_wbcs(img, (um_per_px or self.fallback_um(img)) / self.det_um)
        c = self.det.spec.labels.index("wbc")
        if self.tile:
            prob = self.det.predict_tiled(img, self.window)[..., c]
            kh, kw = self.det.window_shape(self.window)
            return [(box, p) for box, p, _ in component_boxes(prob > self.threshold, SPECK_FRAC * kh * kw, prob)]
        if self.tile is False or um_per_px is None:
            return self._resized(img)
        if self.field_detector:
            return self.canonical(img, um_per_px / self.det_um)
        s = um_per_px / self.det_um  # input px -> detector px
        W, H = img.width * s / self.det.spec.input_width, img.height * s / self.det.spec.input_height
        if self.cell is None or (1 / SAME_SCALE <= W <= SAME_SCALE and 1 / SAME_SCALE <= H <= SAME_SCALE):
            return self._resized(img)  # about the smear detector's own field: as it was trained
        return self.windowed(self.cell, img, um_per_px / self.cell_um)

    def canonical(self, img: Image.Image, s: float) -> list[tuple[list[int], float]]:
        """The field detector on ``img`` resampled by ``s`` to its scale, in overlapping windows; each WBC
        component's box grown back by 1 / its targets' shrink, in ``img`` pixels."""
        detect_size(img, s)  # refuses a field too large at the detector's scale
        small = resample(img, s)  # one resampled copy for both detectors
        found = detect_wbcs(self.window_model(small.size), img, s, small)
        if self.add_nuclei:
            boxes = [b for b, _ in found]
            found += [n for n in self.nucleus_wbcs(img, s, small) if not covered(n[0], boxes)]
        return found

    def window_model(self, size: tuple[int, int]) -> TFLiteSegmenter:
        """The field detector for a field of ``size`` (w, h) px at its scale: the small-window one when the
        field fits in one of its windows, else the default."""
        d = self.small_det
        if d is not None and size[0] <= d.spec.input_width and size[1] <= d.spec.input_height:
            return d
        return self.det

    def nucleus_wbcs(self, img: Image.Image, s: float, small: Image.Image | None = None) -> list[tuple]:
        """The nucleus detector on ``img`` resampled by ``s`` to the canonical scale: (box in ``img`` pixels,
        the share of its nucleus component that is stained core, ``"nuclei"``) per WBC."""
        detect_size(img, s)
        return [([max(0, int(round(x0))), max(0, int(round(y0))), min(img.width, int(round(x1))),
                  min(img.height, int(round(y1)))], p, NUCLEI_DETECTOR)
                for (x0, y0, x1, y1), p in detect_nuclei_at(img, s, self.nuclei_rule, small)]

    def fallback_um(self, img: Image.Image) -> float:
        """µm per pixel when a field has too few red cells: as if it were the detector's own input field."""
        if self.det is None:
            return FIELD_FALLBACK_UM / img.width
        return self.det_um * self.det.spec.input_width / img.width

    def windowed(self, model: TFLiteSegmenter, img: Image.Image, s: float) -> list[tuple[list[int], float]]:
        """``model`` in windows of its input size over ``img`` resampled by ``s``; boxes in ``img`` pixels."""
        W, H = detect_size(img, s)
        small = img if (W, H) == img.size else img.resize((W, H), Image.Resampling.BILINEAR, reducing_gap=2.0)
        prob = model.predict_tiled(small)[..., model.spec.labels.index("wbc")]
        min_area = SPECK_FRAC * model.spec.input_height * model.spec.input_width
        out = []
        for (x0, y0, x1, y1), p, _ in component_boxes(prob > self.threshold, min_area, prob):
            out.append(([int(round(x0 / s)), int(round(y0 / s)), min(img.width, int(round(x1 / s))),
                         min(img.height, int(round(y1 / s)))], p))
        return out

    def single_cell(self, img: Image.Image) -> tuple[list[tuple[list[int], float]], float | None]:
        """The largest WBC component of the cell segmenter's map of the whole image, and the µm per
        pixel that its size implies (:data:`~edge_wbc.defaults.WBC_UM` across), or ([], None)."""
        maps = self.cell.predict_image(img)[..., self.cell.spec.labels.index("wbc")]
        comps = component_boxes(maps > self.threshold, SPECK_FRAC * img.width * img.height, maps)
        if not comps:
            return [], None
        box, p, area = max(comps, key=lambda t: t[2])
        return [(box, p)], WBC_UM / float(np.sqrt(4 * area / np.pi))

    def classify_cell(self, img: Image.Image, box: list[int]) -> dict:
        """The one place count classifies a WBC: (field, box) -> label, confidence, class, flags."""
        a = self.answerer.answer_image(square_crop(img, box))
        return {"label": a.prediction, "confidence": round(a.confidence, 4),
                "class": self.clf.labels[int(a.probs.argmax())], "flags": a.flags}

    def count_image(self, path: Path, img: Image.Image | None = None, timings: dict | None = None) -> dict:
        """Count one image; ``timings`` (optional) gets the seconds of each stage: decode, scale, detect, classify."""
        t = [time.perf_counter()]

        def lap(name: str) -> None:
            t.append(time.perf_counter())
            if timings is not None:
                timings[name] = timings.get(name, 0.0) + t[-1] - t[-2]

        img = load_image(path) if img is None else img
        lap("decode")
        fs = field_scale(img, self.fallback_um(img), self.um_per_px)
        lap("scale")
        if self.tile is not None:  # expert modes: the detector as asked, the scale only reported
            found = self.detect(img)
        elif fs.single_cell and self.cell is not None:
            found, um = self.single_cell(img)
            if um is not None:
                fs.um_per_px, fs.note = um, "single-cell crop: scale from the WBC's own size (12 µm across assumed)"
        elif fs.unusable:
            found = []
        else:
            found = self.detect(img, fs.um_per_px)
        lap("detect")
        # "detection": the detector's mean WBC probability in the box, or for a cell found by the nucleus
        # rule ("found_by": "nuclei") the share of its nucleus component that is stained core
        cells = [{"box": f[0], **self.classify_cell(img, f[0]), "detection": round(f[1], 4),
                  "found_by": f[2] if len(f) > 2 else "detector"} for f in found]
        lap("classify")
        counts: dict[str, int] = {}
        for c in cells:
            counts[c["label"]] = counts.get(c["label"], 0) + 1
        flags = [*fs.flags, *([] if cells else ["no_cells"])]
        return {"file": str(path), "width": img.width, "height": img.height, **fs.as_json(), "cells": cells,
                "counts": counts, "flags": flags}

    def annotate(self, img: Image.Image, result: dict, out: Path) -> None:
        """Boxes and labels drawn on a copy of ``img``, saved as JPEG (quality 90), atomically, without
        its own fsync (``count_paths`` fsyncs the directory once)."""
        img = img.convert("RGB") if img.mode != "RGB" else img.copy()
        d = ImageDraw.Draw(img)
        for c in result["cells"]:
            col = (255, 160, 0) if c["label"] == UNCERTAIN else (0, 200, 255)
            d.rectangle(c["box"], outline=col, width=3)
            d.text((c["box"][0] + 4, max(0, c["box"][1] - 12)), f"{c['label']} {c['confidence']:.2f}", fill=col)
        with atomic_open(out, "wb", durable=False) as fh:  # JPEG: 3 ms a 640x480 field (PNG level 1: 80 ms)
            img.save(fh, format="JPEG", quality=90)

    def models(self) -> dict[str, str]:
        """role -> model path (the rule-based detector: its name); the cell segmenter of single-cell crops too."""
        det = f"{NUCLEI_DETECTOR} (rule-based, no model)" if self.det is None else str(self.det.path)
        cell = {"cell segmenter": str(self.cell.path)} if self.cell is not None else {}
        small = {"detector, fields that fit one window": str(self.small_det.path)} if self.small_det is not None else {}
        return {"detector": det, **small, **cell, "classifier": str(self.clf.path)}

    def settings(self) -> dict:
        how = f"tiled windows ({self.window or 'model input'} px)" if self.tile else "whole smear resized"
        if self.tile is None:
            how = "at the models' training scales (red-cell estimate" + (
                f", given {self.um_per_px} µm/px)" if self.um_per_px else ")")
            if self.det is None:
                how += "; stained nuclei (rule-based, no model)"
            elif self.add_nuclei:
                how += "; the field detector, plus the stained nuclei it missed"
        return {"detection": how,
                "uncertain below": self.uncertain_below, "temperature": self.temperature,
                "interpreter": f"{self.clf.backend} {self.clf.backend_version}"}


def summarize(images: list[dict], labels, min_answered: int = MIN_ANSWERED) -> dict:
    totals = {lab: 0 for lab in [*labels, UNCERTAIN]}
    for r in images:
        for k, v in r["counts"].items():
            totals[k] = totals.get(k, 0) + v
    n = sum(totals.values())
    answered = n - totals.get(UNCERTAIN, 0)
    return {
        "images": images,
        "totals": totals,
        "percent": {k: (100.0 * v / n if n else 0.0) for k, v in totals.items()},
        # the differential: answered cells only; unreliable below MIN_ANSWERED of them
        "n_answered": answered,
        "n_uncertain": totals.get(UNCERTAIN, 0),
        "differential": {k: (100.0 * totals[k] / answered if answered else 0.0) for k in labels},
        "reliable": answered >= min_answered,
        "min_answered": min_answered,
    }


def write_outputs(report: dict, labels, json_out: Path | None, csv_out: Path | None) -> None:
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
    if csv_out:
        cols = [*labels, UNCERTAIN]
        with atomic_open(csv_out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "width", "height", "cells", *cols, "error"])
            for r in report["images"]:
                if r.get("error"):  # not read: blank counts (as classify's CSV), not a field without WBCs
                    w.writerow([r["file"], "", "", "", *["" for _ in cols], r["error"]])
                    continue
                w.writerow([r["file"], r.get("width", ""), r.get("height", ""), len(r.get("cells", [])),
                            *[r.get("counts", {}).get(c, 0) for c in cols], ""])


@dataclass
class CountResult:
    report: dict  # ``summarize``: images, totals, percent (the --json output)
    bad: list[str] = field(default_factory=list)
    images: object = None  # report.FieldImages when an HTML report was asked for
    renamed: str | None = None  # a note when inputs of one name got distinct --out names (OutputStems)


def count_paths(sc: SmearCounter, paths: Iterable[str | Path], out: Path | None = None, json_out: Path | None = None,
                csv_out: Path | None = None, report_images: bool = False) -> CountResult:
    """Count every smear of ``paths``; annotated PNGs into ``out``, the report to ``json_out`` / ``csv_out``;
    with ``report_images`` the annotated fields for the HTML report (:func:`write_report`), kept small."""
    from ..data import iter_inputs
    from ..fileio import OutputStems
    from .report import FieldImages, draw_cells

    results, bad = [], []
    images = FieldImages() if report_images else None
    stems = OutputStems()
    for p in iter_inputs(paths, skip_dir=out):  # a rerun never counts its own annotated fields
        try:
            img = load_image(p)
            r = sc.count_image(p, img)
            if out:
                sc.annotate(img, r, out / f"{stems(p)}.count.jpg")
            if images is not None:
                images.add(draw_cells(img, r["cells"], numbered=True))
        except ImageError as e:
            bad.append(str(e))
            r = {"file": str(p), "cells": [], "counts": {}, "error": str(e)}
            if images is not None:
                images.add(None)
        results.append(r)
    if out and results:
        fsync_dir(out)  # one directory fsync for all the overlays' renames
    report = summarize(results, sc.clf.labels)
    report["models"], report["settings"] = sc.models(), sc.settings()  # which detector ran, and how
    write_outputs(report, sc.clf.labels, json_out, csv_out)
    return CountResult(report, bad, images, stems.note(".count.jpg"))


def write_report(sc: SmearCounter, result: CountResult, path: Path, source: str | None = None) -> None:
    """The self-contained HTML page of a count (atomic); ``source``: where the fields come from, if worth
    saying (the embedded sample). OSError from the write reaches the caller."""
    from .. import __version__
    from .report import FieldImages, render_html

    settings = ({"input": source} if source else {}) | sc.settings()
    page = render_html(result.report, result.images or FieldImages(), list(sc.clf.labels), sc.models(), __version__,
                       settings)
    atomic_write_text(path, page)
