"""Where data is found: ``--data DIR``, then ``$EDGE_WBC_DATA``, then the user cache dir.

Data is never bundled with the project. The user cache dir is the one ``edge-wbc data fetch`` fills
(``platformdirs.user_cache_dir("edge-wbc")/data``).
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
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise DataError(f"{ENV_VAR}={env}: no such directory")
        return p
    return cache_dir()


def data_sources(explicit: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where data is looked for, in order, for `edge-wbc data info`."""
    out = []
    if explicit:
        out.append(("--data", Path(explicit)))
    if os.environ.get(ENV_VAR):
        out.append((ENV_VAR, Path(os.environ[ENV_VAR])))
    out.append(("cache", cache_dir()))
    return out


