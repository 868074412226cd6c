"""Output folders checked before any work, and a lock that gives one run one output.

``check_output_dir(path)`` is called by every command before it trains or samples anything, so a
read-only folder, a path under ``/proc``, a full disk or a path that names a file is found in a
second, not after an hour of training:

    path exists and is not a folder                -> OutputPathError
    path (or its nearest existing parent) is not writable: a probe file cannot be created,
    written, fsynced and removed there             -> OutputPathError
    less than ``min_free_bytes`` free on its disk  -> OutputPathError

``check_output_file(path)`` does the same for one output file and refuses a path that exists and is
not a regular file (a device node such as ``/dev/full``, a FIFO, a folder). A symbolic link to a
regular file is *followed*: the new content replaces the link's target, atomically, and the link
stays a link (bezkit resolves it once and writes beside the target). A dangling link is refused.

``RunLock(path)`` is an exclusive, non-blocking lock on ``path`` (an OS advisory lock held through
an open file: ``flock`` on POSIX, :mod:`filelock` elsewhere): a second process asking for the same
lock gets :class:`RunLocked` at once instead of silently overwriting the first run's files. The
kernel drops the lock when the process exits, however it exits (``kill -9`` included), so a
crashed run never leaves a stale lock behind (only its small, harmless lock file). A released
lock removes its lock file (POSIX): it is unlinked while still held, and a process that locked the
unlinked file in the meantime sees that the path no longer names its file and locks the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import filelock

try:
    import fcntl
except ImportError:  # Windows: filelock, and the lock file stays
    fcntl = None  # type: ignore[assignment]  # the module is absent on this platform

__all__ = [
    "OutputPathError",
    "RunLock",
    "RunLocked",
    "check_output_dir",
    "check_output_file",
    "lock_path_for",
    "resolve_output_file",
]

# A full disk is found before training, not at the first checkpoint: refuse below this much space.
MIN_FREE_BYTES = 16 * 1024 * 1024


class OutputPathError(OSError):
    """An output path cannot be written (names what and why)."""


class RunLocked(RuntimeError):
    """Another process holds the lock of this output."""


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def _probe_write(folder: Path) -> None:
    """Create, write, fsync and remove a small file in ``folder`` (raises OutputPathError)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bezkit-write-test.", suffix=".tmp")
    except OSError as err:
        raise OutputPathError(f"cannot write in {folder}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"bezkit")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise OutputPathError(f"cannot write in {folder}: {err.strerror or err}") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_output_dir(path: str | Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """Check, before any work, that files can be written in folder ``path``; returns it as a Path.

    The folder need not exist (its nearest existing parent is tested, nothing is created).
    Raises :class:`OutputPathError` naming the path and the reason.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"output folder {path} exists and is not a folder")
    base = _existing_ancestor(path.absolute())
    if not base.is_dir():
        raise OutputPathError(f"cannot create output folder {path}: {base} is not a folder")
    _probe_write(base)
    free = shutil.disk_usage(base).free
    if free < min_free_bytes:
        raise OutputPathError(
            f"only {free / 2**20:.1f} MiB free on the disk of {path}; "
            f"at least {min_free_bytes / 2**20:.0f} MiB are needed"
        )
    return path


def resolve_output_file(path: str | Path) -> Path:
    """The regular file that writing ``path`` replaces: ``path`` itself, or the target of a
    symbolic link. Raises :class:`OutputPathError` for a dangling link and for a path that exists
    and is not a regular file (a folder, a device such as ``/dev/full``, a FIFO, a socket)."""
    path = Path(path)
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            raise OutputPathError(f"{path} is a symbolic link to {target}, which does not exist")
        path = target
    if path.exists():
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a folder"
                if stat.S_ISDIR(mode)
                else "not a regular file (a device, FIFO or socket)"
            )
            raise OutputPathError(f"refusing to write {path}: it is {kind}")
    return path


def check_output_file(path: str | Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """Check that ``path`` can be (re)written as a regular file; returns the path to write.

    :func:`resolve_output_file` (special files and dangling links refused, a link to a regular
    file resolves to its target), then :func:`check_output_dir` on the folder that will hold it.
    """
    path = resolve_output_file(path)
    check_output_dir(path.parent, min_free_bytes=min_free_bytes)
    return path


def lock_path_for(path: str | Path, *, folder: bool) -> Path:
    """The lock file of an output: ``FOLDER/.bezkit.lock`` for a folder (``folder=True``), else
    ``PATH.lock`` beside the file(s) that ``PATH`` names (e.g. a checkpoint prefix)."""
    path = Path(path)
    return path / ".bezkit.lock" if folder else path.with_name(path.name + ".lock")


class RunLock:
    """``with RunLock(out, folder=True):`` holds an exclusive lock on the output folder ``out``
    (``folder=False``: on the file prefix ``out``, e.g. a checkpoint) or raises :class:`RunLocked`
    at once if another process holds it. ``what`` names the job in the error message."""

    # the locks this process holds now, so that a writer can tell whether it owns an output
    _held_here: ClassVar[list[RunLock]] = []

    def __init__(self, path: str | Path, *, folder: bool = True, what: str = "run") -> None:
        self.path = Path(path)
        self.folder = folder
        self.lock_file = lock_path_for(self.path, folder=folder)
        self.what = what
        self._lock: filelock.BaseFileLock | None = None  # without fcntl
        self._fd: int | None = None  # the flocked lock file (POSIX)

    def acquire(self) -> RunLock:
        """Take the lock without waiting; :class:`RunLocked` names the output when another process
        holds it."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            lock = filelock.FileLock(str(self.lock_file), timeout=0)
            try:
                lock.acquire()
            except filelock.Timeout:
                raise self._locked() from None
            self._lock = lock
        else:
            self._fd = self._flock()
        RunLock._held_here.append(self)
        return self

    def _locked(self) -> RunLocked:
        return RunLocked(
            f"another {self.what} is using {self.path} (lock {self.lock_file} is held); "
            "wait for it to finish or choose another output"
        )

    def _flock(self) -> int:
        """``flock`` the lock file; returns the open descriptor. A file its holder unlinked after
        this process opened it (a release) is not the lock any more: open the path again."""
        assert fcntl is not None
        while True:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._locked() from None
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.lock_file))
            except FileNotFoundError:
                current = False
            if current:
                return fd
            os.close(fd)  # unlinked by its releasing holder: lock the file at the path now

    def release(self) -> None:
        """Release the lock (nothing if it is not held) and remove its lock file (POSIX)."""
        if self._fd is not None:
            # while held, so no other process holds this file; already gone, or a read-only
            # folder: an empty file stays, harmless
            with contextlib.suppress(OSError):
                os.unlink(self.lock_file)
            os.close(self._fd)
            self._fd = None
            RunLock._held_here.remove(self)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            RunLock._held_here.remove(self)

    def covers(self, target: str | Path) -> bool:
        """Whether ``target`` is an output of this lock: a file inside the locked folder
        (``folder=True``), or, for a file prefix ``PATH``, ``PATH`` itself or a file ``PATH.*``
        beside it (``flow`` covers ``flow.safetensors`` and ``flow.json``)."""
        target, own = Path(target).absolute(), self.path.absolute()
        if self.folder:
            return own in target.parents
        return target.parent == own.parent and (
            target.name == own.name or target.name.startswith(own.name + ".")
        )

    @classmethod
    def held_over(cls, target: str | Path) -> RunLock | None:
        """A lock this process holds that covers ``target`` (:meth:`covers`), else ``None``."""
        return next((lock for lock in cls._held_here if lock.held and lock.covers(target)), None)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None or (self._lock is not None and self._lock.is_locked)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
