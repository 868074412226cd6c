"""The ``bezkit`` command line: ``bezkit train | evaluate | experiment | images | lessons``.

Each subcommand lives in its own module ``bezkit/cli/<name>.py`` exposing::

    add_parser(subparsers)  # subparsers.add_parser(name, help=COMMAND_HELP[name], ...) ...
    run(args) -> int        # the exit status; raise bezkit.cli.common.CLIError for bad input

A subcommand module imports what it needs (torch, the methods) at module level. :func:`main` imports
only the module of the subcommand that runs: the other commands appear in ``bezkit --help`` by
their one-line help (:data:`bezkit.cli.common.COMMAND_HELP`), so ``bezkit --help`` starts without
torch. :func:`load_subcommand` is that one lazy place.

Every command builds its parser in a torch-free module (:data:`PARSER_MODULES`,
``bezkit/cli/<name>_options.py``) whose parsers set ``func`` to the name of what runs them,
``"MODULE"`` (that module's ``run``) or ``"MODULE:FUNCTION"``: ``bezkit COMMAND --help`` and
usage errors never import torch; :func:`main` imports the command module only to run it. A parser
may also set ``check_args``, a torch-free ``check_args(args)`` that :func:`main` calls first (bad
combinations of options found without torch, raised as :class:`~bezkit.cli.common.CLIError`).

A module that does not exist yet is skipped (its command is simply absent); any other import error
propagates, so a broken module is never hidden. Bad input becomes one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from types import ModuleType

from bezkit import __version__
from bezkit.cli.common import COMMAND_HELP, CLIError, Parser, release_claimed_outputs

__all__ = ["PARSER_MODULES", "SUBCOMMANDS", "build_parser", "load_subcommand", "main"]

SUBCOMMANDS: tuple[str, ...] = tuple(COMMAND_HELP)

# commands whose parser lives in a torch-free module: parsing, --help and usage errors do not
# import torch; the parser's ``func`` names the command module (and function) that main imports
# to run it
PARSER_MODULES: dict[str, str] = {
    "train": "train_options",
    "evaluate": "evaluate_options",
    "experiment": "experiment_options",
    "images": "images_options",
    "lessons": "lessons_options",
    "benchmark": "benchmark_options",
}

# a full disk or quota, a read-only file system: a clear one-line error (exit 1), not a traceback
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

DESCRIPTION = """\
bezkit: rectified flows, reflow, Bezier distillation and B-DENSE, for teaching and measuring.

Run 'bezkit COMMAND --help' for the options of a command. A typical 2D session:

  bezkit train --source 8gaussians --target moons --out flow
  bezkit evaluate flow --steps 1 2 4 100
"""


def load_subcommand(name: str) -> ModuleType | None:
    """The module ``bezkit.cli.<name>``, imported now; ``None`` if there is no such module.

    The command line's one lazy import: a subcommand's module, and with it torch and the rest of
    bezkit, is imported only when that subcommand runs (or shows its ``--help``), which keeps
    ``bezkit --help`` fast.
    """
    qualified = f"{__name__}.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as err:
        if err.name != qualified:  # the module exists but one of its imports is missing
            raise
        return None


def build_parser(load: Collection[str] | None = None) -> Parser:
    """The top-level parser with every subcommand of :data:`SUBCOMMANDS` registered.

    The subcommands named in ``load`` (default: all) get their full parser from their module;
    the others are listed by their one-line help only, without importing their module.
    """
    parser = Parser(prog="bezkit", description=DESCRIPTION)
    parser.add_argument(
        "--version",
        action="version",
        version=f"bezkit {__version__}",
        help="print the bezkit version and exit",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=Parser, title="commands"
    )
    for name in SUBCOMMANDS:
        if load is not None and name not in load:
            subparsers.add_parser(name, help=COMMAND_HELP.get(name))
            continue
        module = load_subcommand(PARSER_MODULES.get(name, name))
        if module is not None:
            module.add_parser(subparsers)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option (the top-level
    options, ``--help`` and ``--version``, take no value)."""
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words else None


def _runner(name: str) -> Callable[[argparse.Namespace], int]:
    """What a torch-free parser's ``func`` names: ``"MODULE"`` (its ``run``) or
    ``"MODULE:FUNCTION"``, imported now (with torch). A name that names nothing is a bug of the
    parser: an ``ImportError``, never a silent usage message."""
    module_name, _, function = name.partition(":")
    runner = getattr(load_subcommand(module_name), function or "run", None)
    if not callable(runner):
        raise ImportError(f"bezkit.cli: the parser's func {name!r} names no function")
    return runner


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, ``kill``, a batch scheduler's time limit) is handled as Ctrl-C while
    a command runs: a training saves its checkpoint, an experiment keeps its finished stages,
    and the command says how to resume (exit status 130). Main thread only; the previous
    handler is restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    parser = build_parser(load=() if command is None else (command,))
    try:
        args = parser.parse_args(argv)
    except CLIError as err:
        print(f"{err.prog or parser.prog}: error: {err}", file=sys.stderr)
        return err.code
    except SystemExit as exit_:  # --help, --version
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    func = getattr(args, "func", None)
    command = getattr(args, "command_prog", None) or f"{parser.prog} {args.command}"
    try:
        check = getattr(args, "check_args", None)
        if func is not None and check is not None:
            check(args)  # the torch-free checks of the parsed options, before torch is imported
        if isinstance(func, str):  # a torch-free parser (PARSER_MODULES): import the command now
            func = _runner(func)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        with _terminate_as_interrupt():
            return int(func(args) or 0)
    except CLIError as err:
        print(f"{err.prog or command}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in _DISK_ERRORS:
            raise
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"{command}: error: {err.strerror or err}{where}; the files written before are "
            "intact (every write is atomic): free some space and run the command again",
            file=sys.stderr,
        )
        return 1
    finally:
        release_claimed_outputs()  # output locks end with the command, also when run in process
