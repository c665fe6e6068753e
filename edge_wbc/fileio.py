"""Atomic file output: a reader (or an interrupted run) sees the old file or the whole new one.

The new content goes to a temp file beside the target (``.<name>.XXXX.tmp``, same directory so the
rename is atomic), is flushed and fsynced, and then renamed over the target; the directory is then
fsynced so the rename itself survives a power cut. On any exception, KeyboardInterrupt and
SystemExit included (the CLI turns SIGTERM into SystemExit), the temp file is removed and the target
is untouched. Only SIGKILL or a power cut mid-write can leave a temp file behind, never a partial
target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None,
    durable: bool = True,
) -> Iterator[IO]:
    """Write ``path`` atomically. ``durable=False`` skips the file and directory fsyncs (still atomic:
    a reader sees the old file or the whole new one); a caller writing many files calls
    :func:`fsync_dir` once at the end instead (``edge-wbc count --out``, ``segment``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(d: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename is done regardless
        pass
    finally:
        os.close(fd)


def fsync_dir(d: str | Path) -> None:
    """One directory fsync after a batch of ``durable=False`` writes, so their renames are on disk."""
    _fsync_dir(Path(d))


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """``fig.savefig`` through :func:`atomic_open` (the format from the suffix, PNG by default)."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png", **savefig_kwargs)
    return path


class OutputStems:
    """One output name stem per input file of a run, never the same twice: ``<stem>`` for the first input
    of a name, then ``<stem>.<ext>`` (``lympho.webp`` beside ``lympho.tif``), then ``<stem>.<ext>-2`` ...
    so that two inputs of one name (``001.bmp`` and its mask ``001.png``, ``a/1.jpg`` and ``b/1.jpg``) do
    not write over each other's outputs in one ``--out`` folder. ``renamed`` lists (input, stem) of those
    that did not get their plain stem."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.renamed: list[tuple[str, str]] = []

    def __call__(self, path: str | Path) -> str:
        p = Path(path)
        cands = [p.stem, p.name] if p.suffix else [p.name]
        stem = next((c for c in cands if c.lower() not in self.used), None)
        k = 2
        while stem is None:
            c = f"{p.name}-{k}"
            stem, k = (c if c.lower() not in self.used else None), k + 1
        self.used.add(stem.lower())  # case-insensitive file systems (macOS, Windows) clash on case too
        if stem != p.stem:
            self.renamed.append((str(path), stem))
        return stem

    def release(self, stem: str) -> None:
        """``stem`` was not written after all (the input could not be read): free it for a later input."""
        self.used.discard(stem.lower())
        self.renamed = [(src, s) for src, s in self.renamed if s != stem]

    def note(self, suffix: str) -> str | None:
        """One line naming the renamed outputs (``suffix``: what follows the stem, e.g. ``.mask.png``)."""
        if not self.renamed:
            return None
        shown = ", ".join(f"{src} -> {stem}{suffix}" for src, stem in self.renamed[:3])
        more = f" and {len(self.renamed) - 3} more" if len(self.renamed) > 3 else ""
        return (f"{len(self.renamed)} input(s) share a file name with an earlier input; their outputs carry the "
                f"extension (or a number) so that none is written over: {shown}{more}")
