"""Replace a whole folder by another in one step: ``exchange_folders(new, old)``.

A run written into a staging folder becomes current by swapping the two folders, so that a reader
(or a crash) sees either every file of the previous run or every file of the new one, never a mix.

On Linux the swap is one ``renameat2(old, new, RENAME_EXCHANGE)`` system call: atomic, both paths
exist before and after, each now names the other's content. Where that call is missing (other
systems, old kernels, file systems without it) the swap is three renames through a hidden
``<new>.swap`` name beside ``new``:

    old -> new.swap,   new -> old,   new.swap -> new

If the second rename fails, the first is undone (``old`` is back as it was). A process killed
between the first two renames leaves ``old`` missing and its content in ``new.swap``:
:func:`finish_interrupted_swap` puts it back (it is called before a folder is used again); one
killed before the third finds ``new`` missing, and the swap is finished.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from bezkit.files.atomic import fsync_folder

__all__ = ["SWAP_SUFFIX", "exchange_folders", "finish_interrupted_swap"]

#: The hidden name (beside the new folder) of the old content during a three-rename swap.
SWAP_SUFFIX = ".swap"

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` with Linux's ``renameat2(RENAME_EXCHANGE)``; False where the call
    or the flag is not available (then nothing changed). Other errors raise ``OSError``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    call.restype = ctypes.c_int
    if call(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _swap_name(new: Path) -> Path:
    return new.with_name(new.name + SWAP_SUFFIX)


def exchange_folders(new: str | Path, old: str | Path) -> None:
    """Make ``old`` hold what ``new`` held and ``new`` hold what ``old`` held (both folders must
    exist on one file system). One atomic system call on Linux; elsewhere three renames with the
    failure of the second undone (module docstring)."""
    new, old = Path(new), Path(old)
    for path in (new, old):
        if not path.is_dir():
            raise NotADirectoryError(f"cannot swap {path}: not a folder")
    if _renameat2_exchange(new, old):
        fsync_folder(new.parent)
        fsync_folder(old.parent)
        return
    parked = _swap_name(new)
    os.rename(old, parked)
    try:
        os.rename(new, old)
    except BaseException:
        os.rename(parked, old)
        raise
    os.rename(parked, new)
    fsync_folder(new.parent)
    fsync_folder(old.parent)


def finish_interrupted_swap(new: str | Path, old: str | Path) -> bool:
    """After a process was killed inside a three-rename :func:`exchange_folders`: if ``old`` is
    missing and its content waits at ``new.swap``, put it back at ``old`` (the swap did not
    happen); if ``new`` is missing (killed after the second rename: ``old`` holds the new
    content), finish the swap (``new.swap`` -> ``new``). Returns whether anything was moved."""
    new, old = Path(new), Path(old)
    parked = _swap_name(new)
    if not parked.is_dir():
        return False
    if not new.exists() and old.is_dir():  # the second rename happened: only the third is left
        os.rename(parked, new)
        return True
    if old.exists():
        if any(p.name != ".bezkit.lock" for p in old.iterdir()):
            raise FileExistsError(
                f"{parked} holds the content of {old} from an interrupted swap, but {old} is not "
                "empty: move one of them away by hand"
            )
        for entry in old.iterdir():
            entry.unlink()
        old.rmdir()
    os.rename(parked, old)
    return True
