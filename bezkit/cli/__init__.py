"""The ``bezkit`` command line: ``bezkit train | evaluate | experiment | images ...``.

Each subcommand lives in its own module ``bezkit/cli/<name>.py`` exposing::

    add_parser(subparsers)  # subparsers.add_parser(name, ...) ... .set_defaults(func=run)
    run(args) -> int        # the exit status; raise bezkit.cli.common.CLIError for bad input

:func:`main` imports the modules named in :data:`SUBCOMMANDS` in that order. A module that does not
exist yet is skipped (its command is simply absent); any other import error propagates, so a broken
module is never hidden. Bad input becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from bezkit import __version__
from bezkit.cli.common import CLIError, Parser, release_claimed_outputs

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS: tuple[str, ...] = ("train", "evaluate", "experiment", "images", "lessons")

DESCRIPTION = """\
bezkit: rectified flows, reflow, Bezier distillation and B-DENSE, for teaching and measuring.

Run 'bezkit COMMAND --help' for the options of a command. A typical 2D session:

  bezkit train --source 8gaussians --target moons --out flow
  bezkit evaluate flow --steps 1 2 4 100
"""


def _load_subcommands() -> list[ModuleType]:
    modules = []
    for name in SUBCOMMANDS:
        qualified = f"{__name__}.{name}"
        try:
            modules.append(importlib.import_module(qualified))
        except ModuleNotFoundError as err:
            if err.name != qualified:  # the module exists but one of its imports is missing
                raise
    return modules


def build_parser() -> Parser:
    """The top-level parser with every available subcommand registered."""
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
    for module in _load_subcommands():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except CLIError as err:
        print(f"{err.prog or parser.prog}: error: {err}", file=sys.stderr)
        return err.code
    except SystemExit as exit_:  # --help, --version
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except CLIError as err:
        prog = err.prog or f"{parser.prog} {args.command}"
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        release_claimed_outputs()  # output locks end with the command, also when run in process
