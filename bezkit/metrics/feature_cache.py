"""The cache folder of the metrics' feature networks and reference statistics."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir"]

CACHE_ENV = "BEZKIT_CACHE"


def cache_dir(path: str | Path | None = None) -> Path:
    """The cache folder: ``path`` if given, else ``$BEZKIT_CACHE``, else ``~/.cache/bezkit``."""
    if path is None:
        path = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bezkit"
    return Path(path).expanduser()
