"""Classify image files into a CSV: file,prediction,confidence,<one column per class>,error.

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
from ..runtime import TFLiteClassifier, iter_predictions


@dataclass
class ClassifyResult:
    header: list[str]
    n_ok: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def csv_header(clf: TFLiteClassifier) -> list[str]:
    return ["file", "prediction", "confidence", *clf.labels, "error"]


def iter_rows(clf: TFLiteClassifier, paths: Iterable[str | Path], result: ClassifyResult) -> Iterator[list[str]]:
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
            yield [name, "", "", *blank, derr]

    for p, probs, err in iter_predictions(clf, iter_inputs(paths, onerror=unlistable)):
        yield from pending()
        name = display_name(p)
        if err:
            err = err.encode("utf-8", "backslashreplace").decode("utf-8")  # valid UTF-8 for CSV and terminal
            result.bad.append((name, err))
            yield [name, "", "", *blank, err]
        else:
            result.n_ok += 1
            k = int(probs.argmax())
            yield [name, clf.labels[k], f"{probs[k]:.6f}", *[f"{v:.6f}" for v in probs], ""]
    yield from pending()


def classify_to_csv(clf: TFLiteClassifier, paths: Iterable[str | Path], fh: IO[str]) -> ClassifyResult:
    """Write the CSV of every input to ``fh`` (open it with ``newline=""``), streaming."""
    result = ClassifyResult(csv_header(clf))
    w = csv.writer(fh)
    w.writerow(result.header)
    for row in iter_rows(clf, paths, result):
        w.writerow(row)
    return result
