"""The options of ``bezkit lessons``, without torch: the parser is built (``--help``, usage
errors) before the course kit (and with it torch) is imported; the actions run in
:func:`bezkit.cli.lessons.run`."""

from __future__ import annotations

import argparse
from pathlib import Path

from bezkit.cli.common import COMMAND_HELP, nonempty_path

__all__ = ["DESCRIPTION", "add_parser"]

DESCRIPTION = """bezkit lessons: the notebooks as a course.

  bezkit lessons list                      the lessons that ship with bezkit
  bezkit lessons copy DIR [--student] [--bezkit-wheel WHEEL | --bezkit-requirement SPEC]
                                           lessons, checkpoints, results, CI workflow, README
  bezkit lessons student OUT_DIR           student versions (solutions replaced by stubs)

The lessons, their checkpoints and the experiment's results.json (lesson 05) ship inside the
installed package, so these work after a plain `pip install bezkit`. A course folder written by
`copy` runs its lessons with `python -m pytest` (nbval, see its README.md) and on GitHub Actions
(.github/workflows/lessons.yml).

Examples:
  bezkit lessons copy my-course --bezkit-wheel dist/bezkit-0.2.0-py3-none-any.whl
  bezkit lessons copy my-course-students --student
  bezkit lessons student handouts/ --lesson 03_bezier_curves.ipynb
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit lessons`` and its actions (list, copy, student) to ``subparsers`` without
    importing torch; every action runs :func:`bezkit.cli.lessons.run` (``func="lessons"``)."""
    p = subparsers.add_parser("lessons", help=COMMAND_HELP["lessons"], description=DESCRIPTION)
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    actions.required = True

    listing = actions.add_parser("list", help="list the lessons that ship with bezkit")
    listing.set_defaults(func="lessons")

    copy = actions.add_parser(
        "copy", help="write a course folder: lessons, checkpoints, results, CI workflow, README"
    )
    copy.add_argument(
        "dir", type=nonempty_path, metavar="DIR", help="the course folder (created if needed)"
    )
    copy.add_argument(
        "--student",
        action="store_true",
        help="write the student versions (exercise solutions replaced by stubs)",
    )
    copy.add_argument(
        "--overwrite", action="store_true", help="replace existing files (otherwise an error)"
    )
    source = copy.add_mutually_exclusive_group()
    source.add_argument(
        "--bezkit-wheel",
        type=Path,
        metavar="WHEEL",
        help="ship this bezkit wheel in wheels/ and install it from there (bezkit is not on PyPI)",
    )
    source.add_argument(
        "--bezkit-requirement",
        metavar="SPEC",
        help="install bezkit from this pip requirement, e.g. "
        "'bezkit[notebooks,test] @ git+https://github.com/OWNER/bezkit@TAG'",
    )
    copy.set_defaults(func="lessons")

    student = actions.add_parser("student", help="write student versions of the lessons")
    student.add_argument(
        "out_dir", type=nonempty_path, metavar="OUT_DIR", help="folder for the student notebooks"
    )
    student.add_argument(
        "--lesson",
        action="append",
        metavar="NAME",
        help="only this lesson (file name, repeatable); every lesson without it",
    )
    student.add_argument(
        "--overwrite", action="store_true", help="replace existing files (otherwise an error)"
    )
    student.set_defaults(func="lessons")
    return p
