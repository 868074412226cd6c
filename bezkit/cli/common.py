"""Pieces every ``bezkit`` subcommand shares: the list of commands, the parser class, help
formatting, argument types and the error that becomes a one-line message with exit code 2.

This module imports nothing heavy (no torch): ``bezkit --help`` builds its parser from it alone.
Inputs (datasets, data files) are read by :mod:`bezkit.cli.inputs`, outputs checked, claimed and
written by :mod:`bezkit.cli.outputs`.

A subcommand module looks like::

    from bezkit.cli.common import COMMAND_HELP, CLIError, positive_int

    def add_parser(subparsers) -> None:
        p = subparsers.add_parser("name", help=COMMAND_HELP["name"], description=__doc__)
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

from bezkit.executor import auto_jobs

if TYPE_CHECKING:
    from bezkit.files.run_dir import RunLock

__all__ = [
    "COMMAND_HELP",
    "CLIError",
    "Given",
    "HelpFormatter",
    "Parser",
    "check_finite",
    "given",
    "hold_until_done",
    "jobs_count",
    "nonempty_path",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "release_claimed_outputs",
    "seed_int",
]

#: The largest ``--seed``: seeds are offset (by rank, seed index, stream) and must stay within the
#: signed 64-bit integers that torch and numpy generators take.
MAX_SEED = 2**62 - 1

# The subcommands, in the order ``bezkit --help`` lists them, with their one-line help. Each one is
# the module bezkit/cli/<name>.py (bezkit.cli.load_subcommand).
COMMAND_HELP: dict[str, str] = {
    "train": "train a 2D rectified flow and save a checkpoint",
    "evaluate": "measure a trained 2D flow: W2, straightness, crossings, ... as JSON",
    "experiment": "run the 2D error-accumulation experiment",
    "images": "the methods on images: digits (CPU) or CIFAR-10 (GPUs, torchrun)",
    "lessons": "copy the lessons into a course folder",
    "benchmark": "run a published protocol (torchcfm's 2D benchmark) and write its table",
}

# locks taken by bezkit.cli.outputs.claim_output_dir / hold_until_done in this process, released by
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
        return super()._get_help_string(action) or ""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with :class:`HelpFormatter` and errors raised as :class:`CLIError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # the parsed arguments name the innermost (sub)command that ran, e.g. "bezkit images
        # evaluate", so that an error raised while it runs names it (bezkit.cli.main)
        self.set_defaults(command_prog=self.prog)

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise :class:`CLIError` (one line, exit status 2) instead of argparse's usage dump."""
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


def jobs_count(text: str) -> int:
    """argparse type: ``auto`` (:func:`bezkit.executor.auto_jobs`) or an integer >= 1."""
    if text.strip().lower() == "auto":
        return auto_jobs()
    return _number(int, text, lambda v: v >= 1, "an integer >= 1 or 'auto'")


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def nonempty_path(text: str) -> Path:
    """argparse type: a path that is not empty (``Path("")`` would silently be the current
    folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return Path(text)


def seed_int(text: str) -> int:
    """argparse type: a seed, an integer in ``[0, 2**62 - 1]``."""
    return _number(
        int, text, lambda v: 0 <= v <= MAX_SEED, f"an integer from 0 to 2**62 - 1 = {MAX_SEED}"
    )


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(float, text, lambda v: v > 0, "a number > 0")


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(float, text, lambda v: v >= 0, "a number >= 0")


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


def hold_until_done(lock: RunLock) -> RunLock:
    """Keep an acquired lock until the command ends (:func:`release_claimed_outputs`); used by
    :func:`bezkit.cli.outputs.claim_output_dir`."""
    _CLAIMED.append(lock)
    return lock


def release_claimed_outputs() -> None:
    """Release every lock this process's command claimed (called by ``bezkit.cli.main``: a
    command run in process, as in the tests, frees its outputs as soon as it returns)."""
    while _CLAIMED:
        _CLAIMED.pop().release()
