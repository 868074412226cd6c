"""``bezkit lessons list | copy | student``: the notebooks as a course, run. The options and their
help are in :mod:`bezkit.cli.lessons_options` (torch-free: ``--help`` and usage errors start
fast)."""

from __future__ import annotations

import argparse

from bezkit.cli.common import CLIError
from bezkit.cli.lessons_options import add_parser
from bezkit.cli.outputs import check_output
from bezkit.course import copy_course, kit_files, write_student_versions

__all__ = ["add_parser", "run"]


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
