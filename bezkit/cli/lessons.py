"""bezkit lessons: the notebooks as a course.

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

from __future__ import annotations

import argparse
from pathlib import Path

from bezkit.cli.common import COMMAND_HELP, CLIError, nonempty_path
from bezkit.cli.outputs import check_output
from bezkit.course import copy_course, kit_files, write_student_versions

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit lessons`` and its actions (list, copy, student) to ``subparsers``."""
    p = subparsers.add_parser("lessons", help=COMMAND_HELP["lessons"], description=__doc__)
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    actions.required = True

    listing = actions.add_parser("list", help="list the lessons that ship with bezkit")
    listing.set_defaults(func=run)

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
    copy.set_defaults(func=run)

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
    student.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``bezkit lessons ACTION``: list the shipped lessons, copy them as a course, or write student
    versions."""
    try:
        kit = kit_files()
    except FileNotFoundError as err:
        raise CLIError(str(err)) from err
    lessons = kit.lessons()
    if args.action == "list":
        for path in lessons:
            print(path.name)
        print(f"({len(lessons)} lessons, {kit.origin} copy in {kit.root})")
        return 0
    folder = args.dir if args.action == "copy" else args.out_dir
    check_output(folder, option="DIR" if args.action == "copy" else "OUT_DIR", folder=True)
    try:
        if args.action == "copy":
            out = copy_course(
                args.dir,
                student=args.student,
                overwrite=args.overwrite,
                files=kit,
                bezkit_wheel=args.bezkit_wheel,
                bezkit_requirement=args.bezkit_requirement,
            )
            kind = f"student versions, {out.stubs} stubs" if out.student else "solutions"
            print(f"wrote {len(out.files)} files to {out.root} ({kind})")
            if args.bezkit_wheel is None and args.bezkit_requirement is None:
                print(
                    "note: bezkit is not on PyPI, so requirements.txt cannot install it yet: "
                    "rerun with --bezkit-wheel or --bezkit-requirement (README.md, 'Installing "
                    "bezkit')"
                )
            print(f"next: cd {out.root} && python -m pytest   # runs the lessons under nbval")
            return 0
        chosen = lessons
        if args.lesson:
            by_name = {p.name: p for p in lessons}
            unknown = [n for n in args.lesson if n not in by_name]
            if unknown:
                raise CLIError(f"no lesson {', '.join(unknown)}; the lessons are {list(by_name)}")
            chosen = [by_name[n] for n in args.lesson]
        written = write_student_versions(chosen, args.out_dir, overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise CLIError(str(err)) from err
    except OSError as err:  # e.g. the disk filled up while copying
        raise CLIError(f"cannot write {folder}: {err.strerror or err}") from err
    for w in written:
        print(f"{w.path}: {w.stubs} exercise stub(s)")
    return 0
