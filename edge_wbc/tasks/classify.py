"""Classify image files into a CSV: file,prediction,confidence,<one column per class>,flag,error.

``prediction`` follows the model's one calibrated rule (:mod:`edge_wbc.runtime.rule`): the top class
of the temperature-scaled probabilities, or ``uncertain`` when their top probability is below the
threshold; ``confidence`` and the class columns are those calibrated probabilities.

Files are streamed one at a time (any number of files holds one directory listing at a time), and a
bad file or an unlistable directory does not stop the run: it becomes a row with its reason in the
``error`` column and an entry in :attr:`ClassifyResult.bad`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

from ..data import iter_inputs
from ..preprocess import display_name
from ..runtime import UNCERTAIN, TFLiteClassifier
from .cells import CellAnswerer, iter_answers


@dataclass
class ClassifyResult:
    header: list[str]
    n_ok: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    n_uncertain: int = 0
    flags: dict[str, int] = field(default_factory=dict)  # flag -> files
    ood_scores: list[float] = field(default_factory=list)  # every answered cell's OOD distance (if the model has one)

    def batch_note(self, clf: TFLiteClassifier) -> str | None:
        """The model's note on the run as a whole (cells from another microscope), or None."""
        from ..defaults import ADAPT_MIN_IMAGES

        return None if clf.ood is None else clf.ood.batch_note(self.ood_scores, ADAPT_MIN_IMAGES, clf.path.stem)


def csv_header(clf: TFLiteClassifier) -> list[str]:
    return ["file", "prediction", "confidence", *clf.labels, "flag", "error"]


def iter_rows(clf: TFLiteClassifier, paths: Iterable[str | Path], result: ClassifyResult,
              entries: list | None = None, abstain: bool = True) -> Iterator[list[str]]:
    """CSV rows, one per input file (and per directory that cannot be listed); counts go to ``result``."""
    dir_errors: list[tuple[str, str]] = []
    blank = [""] * len(clf.labels)

    def unlistable(d: Path, e: OSError) -> None:
        name = display_name(d)
        dir_errors.append((name, f"{name}: cannot list directory ({e.strerror or e})"))

    def pending():
        while dir_errors:
            name, derr = dir_errors.pop(0)
            result.bad.append((name, derr))
            if entries is not None:
                entries.append({"file": name, "prediction": None, "confidence": None, "probs": None, "flags": [],
                                "ood_score": None, "error": derr})
            yield [name, "", "", *blank, "", derr]

    answerer = CellAnswerer(clf, abstain=abstain)
    for p, a, err in iter_answers(answerer, iter_inputs(paths, onerror=unlistable)):
        yield from pending()
        name = display_name(p)
        if err:
            err = err.encode("utf-8", "backslashreplace").decode("utf-8")  # valid UTF-8 for CSV and terminal
            result.bad.append((name, err))
            if entries is not None:
                entries.append({"file": name, "prediction": None, "confidence": None, "probs": None, "flags": [],
                                "ood_score": None, "error": err})
            yield [name, "", "", *blank, "", err]
        else:
            result.n_ok += 1
            if a.prediction == UNCERTAIN:
                result.n_uncertain += 1
            for f in a.flags:
                result.flags[f] = result.flags.get(f, 0) + 1
            if a.ood_score is not None:
                result.ood_scores.append(a.ood_score)
            if entries is not None:
                entries.append({"file": name, "prediction": a.prediction, "confidence": round(a.confidence, 6),
                                "probs": {k: round(float(v), 6) for k, v in zip(clf.labels, a.probs)},
                                "flags": a.flags, "ood_score": None if a.ood_score is None else round(a.ood_score, 3),
                                "error": None})
            yield [name, a.prediction, f"{a.confidence:.6f}", *[f"{v:.6f}" for v in a.probs], "|".join(a.flags), ""]
    yield from pending()


def classify_to_csv(clf: TFLiteClassifier, paths: Iterable[str | Path], fh: IO[str],
                    entries: list | None = None, abstain: bool = True) -> ClassifyResult:
    """Write the CSV of every input to ``fh`` (open it with ``newline=""``), streaming; with ``entries``
    (a list) each file's result is also appended there as a dict (for ``--json``)."""
    result = ClassifyResult(csv_header(clf))
    w = csv.writer(fh)
    w.writerow(result.header)
    for row in iter_rows(clf, paths, result, entries, abstain):
        w.writerow(row)
    return result


def write_json(path: str | Path, clf: TFLiteClassifier, result: ClassifyResult, entries: list) -> Path:
    """The ``--json`` output: the model, its rule, counts, and one entry per file (atomic)."""
    import json

    from ..fileio import atomic_write_text

    r = clf.rule
    doc = {"model": str(clf.path), "labels": list(clf.labels),
           "rule": {"temperature": r.temperature, "uncertain_below": r.threshold, "source": r.source},
           "n_ok": result.n_ok, "n_uncertain": result.n_uncertain, "flags": result.flags, "n_bad": len(result.bad),
           "ood": None if clf.ood is None else {"threshold": clf.ood.threshold, "adapted": clf.ood.adapted,
                                                "batch_note": result.batch_note(clf)},
           "images": entries}
    return atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
