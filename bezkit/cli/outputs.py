"""The outputs of the commands: checked before any work, claimed (created and locked for this
process until the command ends), written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bezkit.cli.common import CLIError, hold_until_done
from bezkit.files.atomic import write_json
from bezkit.files.run_dir import (
    OutputPathError,
    RunLock,
    RunLocked,
    check_output_dir,
    check_output_file,
)

__all__ = ["check_output", "claim_output_dir", "refuse_input_as_output", "write_json_atomic"]


def check_output(path: str | Path, *, option: str = "--out", folder: bool = True) -> Path:
    """:func:`bezkit.files.run_dir.check_output_dir` (``folder=True``) or ``check_output_file``
    with its error as a :class:`CLIError` naming ``option``: call it before any work. An empty
    path (which would be the current folder) and the file-system root are refused."""
    if not str(path).strip():
        raise CLIError(f"{option} is empty; give a path")
    if folder and Path(path).resolve() == Path(Path(path).resolve().anchor):
        raise CLIError(f"{option} {path} is the file-system root; give a folder of its own")
    try:
        return check_output_dir(path) if folder else check_output_file(path)
    except OutputPathError as err:
        raise CLIError(f"{option}: {err}") from None


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path (symbolic links followed),
    or, for existing files, the same inode (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_input_as_output(
    out: str | Path, inputs: Iterable[str | Path | None], *, option: str = "--out"
) -> None:
    """Raise a :class:`CLIError` naming ``option`` when the output ``out`` is, or resolves to
    (symbolic or hard link), one of the command's ``inputs`` (``None`` entries are skipped):
    writing it would replace the file being read. Call it before any work."""
    for given in inputs:
        if given is not None and _same_file(Path(out), Path(given)):
            raise CLIError(
                f"{option} {out} is the input file {given}: writing there would replace it; "
                f"choose another {option}"
            )


def claim_output_dir(path: str | Path, *, what: str, option: str = "--out") -> RunLock:
    """Check that folder ``path`` is writable, create it and lock it for this process.

    Returns the held :class:`~bezkit.files.run_dir.RunLock` (keep a reference for as long as
    the work runs; the lock ends with the process at the latest). A second process claiming the
    same folder gets a :class:`CLIError` saying another ``what`` is using it. One line at the top
    of a command: ``lock = claim_output_dir(args.out, what="experiment")``.
    """
    folder = check_output(path, option=option, folder=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return hold_until_done(RunLock(folder, folder=True, what=what).acquire())
    except RunLocked as err:
        raise CLIError(f"{option}: {err}") from None
    except OSError as err:
        raise CLIError(f"{option}: cannot create {folder}: {err.strerror or err}") from None


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (:func:`bezkit.files.atomic.write_json`)."""
    return write_json(path, obj)
