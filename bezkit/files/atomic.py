"""Files that are either fully written or not there: temporary file + fsync + ``os.replace``.

``os.replace`` within one folder is atomic on POSIX and Windows, so a reader (or a crash) never
sees a half-written file: it sees the old content or the new. Used by checkpoints, pair shards,
caches and every JSON output (:func:`write_json` is bezkit's one JSON writer).

What a target path may be (:func:`bezkit.files.run_dir.resolve_output_file`): a new path, a
regular file (replaced), or a symbolic link to a regular file (the link is followed: its target is
replaced, the link stays). A folder, a device node (``/dev/full``), a FIFO or a dangling link is
refused with :class:`~bezkit.files.run_dir.OutputPathError`; nothing is replaced.

The file written gets the permissions a plain ``open(target, "w")`` would give it: an existing
target's mode is kept, a new file gets ``0o666`` less the process's umask (the temporary file is
created with that mode, not ``tempfile.mkstemp``'s ``0o600``).

The temporary file is ``.<name>.<random>.tmp`` beside the target. A process killed mid-write
leaves it behind; :func:`remove_stale_temp_files` deletes those of one target, and only for the
process that holds the output's lock (:class:`~bezkit.files.run_dir.RunLock`), since another
process may be writing that temporary file right now.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bezkit.files.run_dir import RunLock, resolve_output_file

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "fsync_folder",
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
    tmp, mode = _new_temp_file(target)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # the bytes are on disk before the rename makes them current
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # last, so that a read-only mode does not stop the writes above
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_folder(target.parent)
    return target


def _new_temp_file(target: Path) -> tuple[str, int]:
    """Create (exclusively) an empty temporary file beside ``target``; returns it with the mode a
    plain ``open(target, "w")`` would leave ``target`` with: the target's mode if it exists, else
    ``0o666`` less the umask (the kernel applies the umask to the new file, as to any)."""
    for _ in range(100):
        tmp = os.path.join(target.parent, f"{_temp_prefix(target)}{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        mode = target.stat().st_mode if target.exists() else os.stat(tmp).st_mode
        return tmp, stat.S_IMODE(mode)
    raise FileExistsError(f"cannot create a temporary file beside {target}")  # pragma: no cover


def fsync_folder(folder: Path) -> None:
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


def remove_stale_temp_files(target: str | Path, *, owner: RunLock) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes of ``target`` left behind.

    ``owner`` is the lock this process holds over ``target`` (:meth:`RunLock.covers`): only the
    owner of an output can know that no other process is writing it, so without it (not held, or
    not covering ``target``) nothing is deleted and a ``ValueError`` says why. Returns the files
    removed.
    """
    target = Path(target)
    if not owner.held or not owner.covers(target):
        raise ValueError(
            f"the temporary files of {target} may be removed only under a lock held over it "
            f"(the lock on {owner.path} is {'held' if owner.held else 'not held'} and "
            f"{'covers' if owner.covers(target) else 'does not cover'} it)"
        )
    if not target.parent.is_dir():
        return []
    removed = []
    # the name is escaped: "run[1].json" must not match another file's ".run1.json.*.tmp"
    for tmp in target.parent.glob(glob.escape(_temp_prefix(target)) + "*.tmp"):
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
