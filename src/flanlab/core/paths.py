"""Where flanlab finds local data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

__all__ = ["DATA_DIR_ENV", "CACHE_DIR_ENV", "DataDir", "cache_dir", "data_dir", "require_data_dir"]

DATA_DIR_ENV = "FLANLAB_DATA_DIR"
CACHE_DIR_ENV = "FLANLAB_CACHE_DIR"


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The local data folder: ``--data-dir`` if given, else ``$FLANLAB_DATA_DIR``, else None (use the hub).

    Called only at the edges, where a setting enters: a command's flag, or a config field of type
    :data:`DataDir` when it is validated. Stage code takes the resulting ``Path | None`` as given
    (None: no data dir) and never reads the environment itself."""
    value = explicit if explicit not in (None, "") else os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


# A config field holding the data dir: a string becomes a Path, and an unset value becomes
# $FLANLAB_DATA_DIR once, when the config is validated (None when that is unset too).
DataDir = Annotated[Path | None, BeforeValidator(data_dir), Field(validate_default=True)]


def require_data_dir(explicit: str | Path | None = None) -> Path:
    """Like :func:`data_dir` but the folder must be set and exist."""
    found = data_dir(explicit)
    if found is None:
        raise FileNotFoundError(f"no data dir: pass --data-dir DIR or set {DATA_DIR_ENV}")
    if not found.is_dir():
        raise FileNotFoundError(f"data dir {found} does not exist (from --data-dir or {DATA_DIR_ENV})")
    return found


def cache_dir(*parts: str) -> Path:
    """A folder under flanlab's cache (``$FLANLAB_CACHE_DIR`` or ``~/.cache/flanlab``), created on demand."""
    root = os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "flanlab"
    )
    path = Path(root).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
