"""Smear -> WBC differential: find WBCs with a U-Net, classify each crop, count.

Detection, two ways. By default the ``unet`` smear model (trained on BCCD smears with their VOC WBC
boxes as targets) gives a WBC probability map of the whole smear resized to its input; 4-connected
components above 0.5 become boxes, scaled to the original image. With ``tile`` (fields at the
magnification of the cell segmenter's training patches, e.g. SigTuple smears, where the BCCD
detector's cells would be a few pixels wide) the cell segmenter runs in windows at native scale
(``TFLiteSegmenter.predict_tiled``) and the components of its WBC map, less specks, become boxes.
Each box is cropped as a square of side max(w, h) around its centre (as the BCCD crops are) and
classified. A crop whose calibrated confidence is below the classifier's threshold (its one
calibrated rule, :mod:`edge_wbc.runtime.rule`) is reported as ``uncertain``, never forced into a class.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from PIL import Image, ImageDraw

from ..defaults import MASK_THRESHOLD, MIN_ANSWERED, SPECK_FRAC
from ..errors import ImageError, ModelError
from ..fileio import atomic_open, atomic_write_text, fsync_dir
from ..preprocess import load_image, resize_image
from ..runtime import TFLiteClassifier, TFLiteSegmenter
from ..runtime.rule import UNCERTAIN
from .segment import boxes_from_map, component_boxes


def square_crop(img: Image.Image, box: list[int]) -> Image.Image:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return img.crop((left, top, left + side, top + side))  # outside the image: black padding


class SmearCounter:
    def __init__(
        self,
        detector: str | Path,
        classifier: str | Path,
        threads: int = 1,
        threshold: float = MASK_THRESHOLD,
        uncertain_below: float | None = None,
        tile: bool = False,
        window: int | None = None,
    ):
        if window is not None and not tile:
            raise ValueError(f"window {window} px applies to tiled detection only")
        self.det = TFLiteSegmenter(detector, num_threads=threads)
        if "wbc" not in self.det.spec.labels:
            raise ModelError(f"{self.det.path}: detector labels {list(self.det.spec.labels)} have no 'wbc' map")
        self.tile, self.window = tile, window
        self.clf = TFLiteClassifier(classifier, num_threads=threads)
        rule = self.clf.rule
        if uncertain_below is not None:
            rule = dataclasses.replace(rule, threshold=float(uncertain_below), source="--uncertain-below")
        self.rule = rule
        self.temperature, self.uncertain_below = rule.temperature, rule.threshold
        from .cells import CellAnswerer

        self.answerer = CellAnswerer(self.clf, rule=rule)
        self.threshold = threshold

    def detect(self, img: Image.Image) -> list[tuple[list[int], float]]:
        c = self.det.spec.labels.index("wbc")
        if self.tile:
            prob = self.det.predict_tiled(img, self.window)[..., c]
            kh, kw = self.det.window_shape(self.window)
            return [(box, p) for box, p, _ in component_boxes(prob > self.threshold, SPECK_FRAC * kh * kw, prob)]
        prob = self.det.predict(resize_image(img, self.det.spec)[None])[0][..., c]
        sx, sy = img.width / self.det.spec.input_width, img.height / self.det.spec.input_height
        out = []
        for (x0, y0, x1, y1), p, _ in boxes_from_map(prob, self.threshold):
            out.append(([int(round(x0 * sx)), int(round(y0 * sy)), min(img.width, int(round(x1 * sx))),
                         min(img.height, int(round(y1 * sy)))], p))
        return out

    def count_image(self, path: Path, img: Image.Image | None = None) -> dict:
        img = load_image(path) if img is None else img
        cells = []
        for box, det_p in self.detect(img):
            a = self.answerer.answer_image(square_crop(img, box))
            cells.append({"box": box, "label": a.prediction, "confidence": round(a.confidence, 4),
                          "class": self.clf.labels[int(a.probs.argmax())], "flags": a.flags,
                          "detection": round(det_p, 4)})
        counts: dict[str, int] = {}
        for c in cells:
            counts[c["label"]] = counts.get(c["label"], 0) + 1
        flags = [] if cells else ["no_cells"]
        return {"file": str(path), "width": img.width, "height": img.height, "cells": cells, "counts": counts,
                "flags": flags}

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
        return {"detector": str(self.det.path), "classifier": str(self.clf.path)}

    def settings(self) -> dict:
        how = f"tiled windows ({self.window or 'model input'} px)" if self.tile else "whole smear resized"
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
                w.writerow([r["file"], r.get("width", ""), r.get("height", ""), len(r.get("cells", [])),
                            *[r.get("counts", {}).get(c, 0) for c in cols], r.get("error", "")])


@dataclass
class CountResult:
    report: dict  # ``summarize``: images, totals, percent (the --json output)
    bad: list[str] = field(default_factory=list)
    images: object = None  # report.FieldImages when an HTML report was asked for


def count_paths(sc: SmearCounter, paths: Iterable[str | Path], out: Path | None = None, json_out: Path | None = None,
                csv_out: Path | None = None, report_images: bool = False) -> CountResult:
    """Count every smear of ``paths``; annotated PNGs into ``out``, the report to ``json_out`` / ``csv_out``;
    with ``report_images`` the annotated fields for the HTML report (:func:`write_report`), kept small."""
    from ..data import iter_inputs
    from .report import FieldImages, draw_cells

    results, bad = [], []
    images = FieldImages() if report_images else None
    for p in iter_inputs(paths):
        try:
            img = load_image(p)
            r = sc.count_image(p, img)
            if out:
                sc.annotate(img, r, out / f"{p.stem}.count.jpg")
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
    write_outputs(report, sc.clf.labels, json_out, csv_out)
    return CountResult(report, bad, images)


def write_report(sc: SmearCounter, result: CountResult, path: Path, source: str | None = None) -> None:
    """The self-contained HTML page of a count (atomic); ``source``: where the fields come from, if worth
    saying (the embedded sample). OSError from the write reaches the caller."""
    from .. import __version__
    from .report import FieldImages, render_html

    settings = ({"input": source} if source else {}) | sc.settings()
    page = render_html(result.report, result.images or FieldImages(), list(sc.clf.labels), sc.models(), __version__,
                       settings)
    atomic_write_text(path, page)
