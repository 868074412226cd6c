"""Files that are either fully written or not there: temporary file + fsync + ``os.replace``.

``os.replace`` within one folder is atomic on POSIX and Windows, so a reader (or a crash) never
sees a half-written file: it sees the old content or the new. Used by checkpoints, pair shards,
caches and every JSON output (:func:`write_json` is bezkit's one JSON writer).

What a target path may be (:func:`bezkit.training.run_dir.resolve_output_file`): a new path, a
regular file (replaced), or a symbolic link to a regular file (the link is followed: its target is
replaced, the link stays). A folder, a device node (``/dev/full``), a FIFO or a dangling link is
refused with :class:`~bezkit.training.run_dir.OutputPathError`; nothing is replaced.

The temporary file is ``.<name>.<random>.tmp`` beside the target. A process killed mid-write
leaves it behind; :func:`remove_stale_temp_files` deletes those of one target (callers that hold
the output's lock call it before writing).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bezkit.training.run_dir import resolve_output_file

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "remove_stale_temp_files",
    "sha256_file",
    "write_json",
]


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def atomic_write(target: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``target``, fsync it, move it into
    place and fsync the folder; returns the path written (a link's target for a symbolic link).

    On any error the temporary file is removed and ``target`` is left as it was.
    """
    target = resolve_output_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_temp_prefix(target), suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # the bytes are on disk before the rename makes them current
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_folder(target.parent)
    return target


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path written."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write(path, write)


def write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    allow_nan: bool = False,
) -> Path:
    """Write ``obj`` as JSON (and a final newline) to ``path`` atomically; returns the path.

    NaN and infinities are refused by default (``ValueError``): they are not JSON.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    return atomic_write_bytes(path, text.encode())


def remove_stale_temp_files(target: str | Path) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes of ``target`` left behind.

    Only call this while no other process can be writing ``target`` (hold its lock). Returns the
    files removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for tmp in target.parent.glob(_temp_prefix(target) + "*.tmp"):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink()
            removed.append(tmp)
    return removed


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
