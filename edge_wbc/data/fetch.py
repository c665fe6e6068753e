"""``edge-wbc data fetch``: download a catalog dataset into the cache dir, md5-checked."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from .catalog import CATALOG, FETCHABLE
from .roots import ENV_VAR, cache_dir


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    name: str, dest_root: Path | None = None, url: str | None = None, timeout: float = 30.0, progress=None
) -> Path:
    """Download a dataset into the cache dir with an md5 check. Offline -> DataError naming EDGE_WBC_DATA."""
    if name not in FETCHABLE:
        raise DataError(f"cannot fetch {name!r}: valid choices are {', '.join(FETCHABLE)}")
    info = CATALOG[name]
    md5 = info.md5
    url = url or info.url
    dest = (dest_root or cache_dir()) / info.path
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    total = int(r.headers.get("Content-Length") or 0)
                    if progress:
                        progress(0, total)
                    while chunk := r.read(1 << 20):
                        out.write(chunk)
                        if progress:
                            progress(len(chunk), total)
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                raise DataError(
                    f"cannot download {name} from {url} ({getattr(e, 'reason', e)}). If this machine is offline, "
                    f"put the data in a folder and point {ENV_VAR} (or --data) at it"
                ) from None
        got = md5sum(Path(tmp))
        if got != md5:
            raise DataError(
                f"downloaded {name} has md5 {got}, expected {md5}: the file is corrupt or changed; not saved"
            )
        shutil.move(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


