"""Where data is found: ``--data DIR``, then ``$EDGE_WBC_DATA``, then the user cache dir, then the sample.

The user cache dir is the one ``edge-wbc data fetch`` fills (``platformdirs.user_cache_dir("edge-wbc")/data``).
The only data that ships with the package is the embedded sample (:mod:`edge_wbc.data.sample`): a
dataset that neither ``--data``, ``$EDGE_WBC_DATA`` nor the cache was asked for or holds is read from
it, and :func:`dataset_root` says so (the caller announces it).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError

ENV_VAR = "EDGE_WBC_DATA"


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("edge-wbc")) / "data"


def data_root(explicit: str | Path | None = None) -> Path:
    """--data, then $EDGE_WBC_DATA, then the user cache dir. Raises DataError if the choice is missing."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise DataError(f"--data {p}: no such directory")
        return p.resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise DataError(f"{ENV_VAR}={env}: no such directory")
        return p.resolve()
    return cache_dir()


def data_sources(explicit: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where data is looked for, in order, for `edge-wbc data info`."""
    out = []
    if explicit:
        out.append(("--data", Path(explicit)))
    if os.environ.get(ENV_VAR):
        out.append((ENV_VAR, Path(os.environ[ENV_VAR])))
    out.append(("cache", cache_dir()))
    if not explicit and not os.environ.get(ENV_VAR):
        from .sample import SAMPLE_DIR, SAMPLE_SETS

        out.append((f"embedded sample: {', '.join(SAMPLE_SETS)}", SAMPLE_DIR))
    return out




def dataset_root(name: str, explicit: str | Path | None = None) -> tuple[Path, dict | None]:
    """The root to read dataset ``name`` from, and the sample's info when that root is the embedded sample.

    ``--data`` and ``$EDGE_WBC_DATA`` are used as given (a dataset missing there is the caller's error);
    with neither, the cache if it holds ``name``, else the embedded sample if it holds ``name``
    (sha256-checked: a damaged sample is a DataError that says to reinstall), else the cache.
    """
    from .catalog import CATALOG
    from .sample import SAMPLE_SETS, sample_info, sample_root

    root = data_root(explicit)
    if explicit or os.environ.get(ENV_VAR) or name not in SAMPLE_SETS:
        return root, None
    rel = CATALOG[name].path if name in CATALOG else name
    if (root / rel).exists():
        return root, None
    return sample_root(), sample_info(name)
