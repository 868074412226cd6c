"""Pieces every ``bezkit`` subcommand shares: the parser class, help formatting, argument types,
the error that becomes a one-line message with exit code 2, and an atomic JSON writer.

A subcommand module looks like::

    from bezkit.cli.common import CLIError

    def add_parser(subparsers) -> None:
        p = subparsers.add_parser("name", help="one line", description=__doc__)
        p.add_argument("--n", type=positive_int, default=10, help="what it means")
        p.set_defaults(func=run)

    def run(args) -> int:
        if bad(args):
            raise CLIError("what is wrong, naming the value")   # -> exit 2, one line, no traceback
        ...
        return 0

Parsers made by ``subparsers.add_parser`` are :class:`Parser` instances, so they show defaults in
``--help`` and turn usage errors into :class:`CLIError` without further setup.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bezkit.training.run_dir import RunLock

__all__ = [
    "CLIError",
    "Given",
    "HelpFormatter",
    "Parser",
    "check_finite",
    "check_output",
    "claim_output_dir",
    "data_ref",
    "data_sha256",
    "dataset",
    "given",
    "hold_until_done",
    "load_sampler",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "release_claimed_outputs",
    "write_json_atomic",
]

# locks taken by claim_output_dir / hold_until_done in this process, released by
# release_claimed_outputs() when the command ends (bezkit.cli.main), however it ends
_CLAIMED: list[RunLock] = []


class CLIError(Exception):
    """Bad input: reported as ``bezkit <command>: error: <message>`` with exit code ``code`` (2)."""

    def __init__(self, message: str, *, code: int = 2, prog: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.prog = prog


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and epilogs verbatim; ``(default: ...)`` after every option that has one.

    Options whose default is ``None`` or ``False`` say in their own words what happens without them.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with :class:`HelpFormatter` and errors raised as :class:`CLIError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')", prog=self.prog)


class Given(argparse.Action):
    """``store`` that also records the option's ``dest`` in ``namespace._given``.

    Lets a command tell an option the user typed from one left at its default (e.g. ``--resume``
    refuses an explicit ``--hidden`` that contradicts the checkpoint but uses the checkpoint's value
    when ``--hidden`` was not given).
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        given_set = set(getattr(namespace, "_given", ()))
        given_set.add(self.dest)
        namespace._given = given_set


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the option stored in ``dest`` (with ``action=Given``) was typed by the user."""
    return dest in getattr(args, "_given", ())


def _number(kind: type, text: str, test: Any, what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if not test(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(float, text, lambda v: v > 0, "a number > 0")


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(float, text, lambda v: v >= 0, "a number >= 0")


def dataset(text: str) -> str:
    """argparse type: a 2D toy dataset name (``bezkit.data.TOY_DATASETS``) or a .npy/.csv file.

    A file must exist; its contents are checked when it is loaded.
    """
    from bezkit.data import TOY_DATASETS

    if text in TOY_DATASETS:
        return text
    if text.lower().endswith((".npy", ".csv")):
        if Path(text).is_dir():
            raise argparse.ArgumentTypeError(f"data file {text} is a folder, not a file")
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"data file not found: {text}")
        return text
    known = ", ".join(TOY_DATASETS)
    raise argparse.ArgumentTypeError(
        f"unknown dataset {text!r}; use one of {known} or a .npy/.csv file of (n, 2) points"
    )


def data_ref(name: str) -> str:
    """A dataset name as given; a data file as an absolute path (a checkpoint works anywhere)."""
    if name.lower().endswith((".npy", ".csv")):
        return str(Path(name).resolve())
    return name


def data_sha256(name: str) -> str | None:
    """The SHA-256 of a data file (None for a named dataset): recorded at training, checked on
    resume and by ``evaluate`` so that a changed file is never used silently."""
    from bezkit.training.atomic import sha256_file

    if not name.lower().endswith((".npy", ".csv")):
        return None
    try:
        return sha256_file(name)
    except OSError as err:
        raise CLIError(f"cannot read data file {name}: {err.strerror or err}") from None


def load_sampler(name: str, option: str) -> Any:
    """The 2D sampler for a dataset name or data file; problems become a :class:`CLIError`
    naming ``--option``."""
    from bezkit.data import get_sampler

    try:
        sampler = get_sampler(name)
    except (FileNotFoundError, ValueError, TypeError) as err:
        raise CLIError(f"--{option}: {err}") from None
    shape = tuple(getattr(sampler, "data_shape", (2,)))
    if shape != (2,):
        raise CLIError(
            f"--{option} {name} holds points of shape {shape}; 2D points (n, 2) are needed here"
        )
    return sampler


def check_finite(obj: Any, where: str = "") -> None:
    """Raise ``ValueError`` naming the first non-finite float in a nested dict/list."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where or 'value'} is {obj}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, f"{where}[{i}]")


def check_output(path: str | Path, *, option: str = "--out", folder: bool = True) -> Path:
    """:func:`bezkit.training.run_dir.check_output_dir` (``folder=True``) or ``check_output_file``
    with its error as a :class:`CLIError` naming ``option``: call it before any work."""
    from bezkit.training.run_dir import OutputPathError, check_output_dir, check_output_file

    try:
        return check_output_dir(path) if folder else check_output_file(path)
    except OutputPathError as err:
        raise CLIError(f"{option}: {err}") from None


def claim_output_dir(path: str | Path, *, what: str, option: str = "--out") -> RunLock:
    """Check that folder ``path`` is writable, create it and lock it for this process.

    Returns the held :class:`~bezkit.training.run_dir.RunLock` (keep a reference for as long as
    the work runs; the lock ends with the process at the latest). A second process claiming the
    same folder gets a :class:`CLIError` saying another ``what`` is using it. One line at the top
    of a command: ``lock = claim_output_dir(args.out, what="experiment")``.
    """
    from bezkit.training.run_dir import RunLock, RunLocked

    folder = check_output(path, option=option, folder=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return hold_until_done(RunLock(folder, folder=True, what=what).acquire())
    except RunLocked as err:
        raise CLIError(f"{option}: {err}") from None
    except OSError as err:
        raise CLIError(f"{option}: cannot create {folder}: {err.strerror or err}") from None


def hold_until_done(lock: RunLock) -> RunLock:
    """Keep an acquired lock until the command ends (:func:`release_claimed_outputs`)."""
    _CLAIMED.append(lock)
    return lock


def release_claimed_outputs() -> None:
    """Release every lock this process's command claimed (called by ``bezkit.cli.main``: a
    command run in process, as in the tests, frees its outputs as soon as it returns)."""
    while _CLAIMED:
        _CLAIMED.pop().release()


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (:func:`bezkit.training.atomic.write_json`)."""
    from bezkit.training.atomic import write_json  # lazy: bezkit.training imports torch

    return write_json(path, obj)
