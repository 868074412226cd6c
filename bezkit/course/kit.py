"""``bezkit lessons copy``: start a course repository from the lessons.

:func:`copy_course` writes into a folder::

    notebooks/NN_*.ipynb                the lessons (solutions, or student versions)
    notebooks/sanitize.cfg              nbval's output sanitizers
    notebooks/README.md, NOTATION.md    the table of lessons, the notation cheat-sheet
    data/checkpoints/...                the small pretrained flows the lessons load
    data/results/results.json           the experiment results lesson 05 reads (when shipped)
    .github/workflows/lessons.yml       GitHub Actions: pytest --nbval-lax on the notebooks
    pytest.ini, requirements.txt        so that a plain ``python -m pytest`` runs the lessons
    wheels/bezkit-*.whl                 bezkit itself, with ``bezkit_wheel`` (``--bezkit-wheel``)
    README.md                           a short guide for the lecturer

bezkit is not on PyPI, so the lecturer chooses how the course installs it (the README says so):
a wheel shipped in ``wheels/`` (``requirements.txt``: ``--find-links ./wheels`` and the pinned
version, which pip then installs offline from the folder), or any pip requirement such as a git
URL of a bezkit repository (``bezkit_requirement``). Without either, ``requirements.txt`` pins the
version for a package index that serves it, with a comment saying that the choice is still open.

Every file is written atomically; existing files are never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bezkit import __version__
from bezkit.course.kit_manifest import KitFiles, kit_files
from bezkit.course.student import notebook_json, read_notebook, student_notebook
from bezkit.files.atomic import atomic_write, atomic_write_bytes

__all__ = [
    "WORKFLOW",
    "CourseKit",
    "copy_course",
    "install_choice",
    "lecturer_readme",
    "requirements_txt",
    "wheel_version",
]

WORKFLOW = """\
# Runs every lesson top to bottom on each push (written by `bezkit lessons copy`).
name: lessons
on:
  push:
  pull_request:
  workflow_dispatch:
jobs:
  notebooks:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - name: Install bezkit (CPU torch)
        run: pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
      - name: Run the lessons under nbval
        run: python -m pytest
"""

PYTEST_INI = """\
[pytest]
testpaths = notebooks
addopts = --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider
"""

EXTRAS = "bezkit[notebooks,test]"
_WHEEL = re.compile(r"^bezkit-(?P<version>[^-]+)-[^-]+-[^-]+-[^-]+\.whl$")


def wheel_version(wheel: Path) -> str:
    """The version of a bezkit wheel from its file name; ``ValueError`` for anything else."""
    wheel = Path(wheel)
    match = _WHEEL.match(wheel.name)
    if match is None:
        raise ValueError(f"{wheel} is not a bezkit wheel (bezkit-VERSION-py3-none-any.whl)")
    if not wheel.is_file():
        raise FileNotFoundError(f"no wheel {wheel}")
    return match["version"]


def requirements_txt(*, wheel: Path | None = None, requirement: str | None = None) -> str:
    """The course's ``requirements.txt``: bezkit from a shipped wheel, from ``requirement``, or the
    version pin that still needs an index serving it."""
    if wheel is not None:
        return (
            "# What the lessons and their CI need: bezkit from the wheel shipped in wheels/ (pip\n"
            "# finds it there, offline), its dependencies from the package index.\n"
            f"--find-links ./wheels\n{EXTRAS}=={wheel_version(wheel)}\n"
        )
    if requirement is not None:
        return f"# What the lessons and their CI need: bezkit from the source you chose.\n{requirement}\n"
    return (
        '# What the lessons and their CI need. CHOOSE how to install bezkit (README.md, "Installing\n'
        '# bezkit"): it is not on PyPI, so this pin works only with an index that serves it.\n'
        f"{EXTRAS}=={__version__}\n"
    )


def install_choice(*, wheel: Path | None = None, requirement: str | None = None) -> str:
    """One sentence for the README: how this course installs bezkit."""
    if wheel is not None:
        return f"This course installs bezkit from the wheel `wheels/{Path(wheel).name}` it ships."
    if requirement is not None:
        return f"This course installs bezkit from `{requirement}`."
    return (
        f"**Not chosen yet**: `requirements.txt` pins `{EXTRAS}=={__version__}`, which is not on "
        "PyPI, so the course's CI cannot install it until you pick one of the two ways above."
    )


@dataclass(frozen=True)
class CourseKit:
    """What :func:`copy_course` wrote: the folder, the files (relative), which version."""

    root: Path
    files: tuple[Path, ...]
    student: bool
    stubs: int


def lecturer_readme(lessons: Sequence[str], *, student: bool, install: str = "") -> str:
    """The course folder's README.md: what is there, how to install, run and test it (``install``:
    :func:`install_choice`'s sentence)."""
    version = "student versions (exercise solutions replaced by stubs)" if student else "solutions"
    rows = "\n".join(f"- `notebooks/{name}`" for name in lessons)
    return f"""\
# Course notebooks (bezkit {__version__})

Written by `bezkit lessons copy` ({version}).

{rows}

## Installing bezkit: what you must choose

bezkit is not published on PyPI. Choose how your students and the CI install it, when you write
the course:

1. **Ship a wheel** (works offline, pins exactly what you tested): build it in a bezkit checkout
   (`python -m pip wheel --no-deps -w dist .`) and run
   `bezkit lessons copy DIR --bezkit-wheel dist/bezkit-VERSION-py3-none-any.whl`. The wheel goes
   to `wheels/` and `requirements.txt` installs it with `--find-links ./wheels`. Commit `wheels/`.
2. **A git URL** of a bezkit repository you can reach, with the tag you tested:
   `bezkit lessons copy DIR --bezkit-requirement "{EXTRAS} @ git+https://github.com/OWNER/bezkit@TAG"`.

{install or install_choice()}

## Run

```bash
pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
jupyter lab notebooks/
```

Each lesson starts with `setup_lesson()`, which seeds torch, uses one thread and finds
`data/checkpoints/` next to `notebooks/` (set `BEZKIT_CHECKPOINTS` to use another folder).

## Exercises

Each lesson ends with short exercises. A cell tagged `solution` holds the code between
`# BEGIN SOLUTION` and `# END SOLUTION`; the next cell (tagged `check`) passes it to a check of
`bezkit.exercises`, which says what is wrong, not just "False". For the students' copy run
`bezkit lessons student OUT_DIR` (or `bezkit lessons copy DIR --student`): every block becomes
`raise NotImplementedError(...)` and every check then prints "not implemented yet".

## Test (what `.github/workflows/lessons.yml` runs)

```bash
python -m pytest        # pytest.ini: --nbval-lax on notebooks/
```

Every cell must run without error; cells whose first line is `# NBVAL_CHECK_OUTPUT` must also
print their stored output (deterministic, rounded values only). With the student versions the
checks print "not implemented yet" and the notebooks still run without error. On CPU the
lessons take a few minutes in all.
"""


#: Present in a course folder while ``copy_course`` writes it: a copy that stopped half-way says so.
INCOMPLETE_MARKER = ".bezkit-copy-incomplete"
INCOMPLETE_TEXT = (
    "bezkit lessons copy was writing this folder and did not finish; run it again with "
    "--overwrite to complete the course.\n"
)


def _refuse_existing(out_dir: Path, plan: dict[Path, Any], *, overwrite: bool) -> None:
    """Unless ``overwrite``: refuse a folder that already has files of ``plan``, and say so when
    they are the remains of an interrupted copy."""
    if overwrite:
        return
    existing = [str(rel) for rel in plan if (out_dir / rel).exists()]
    if (out_dir / INCOMPLETE_MARKER).exists():
        raise FileExistsError(
            f"{out_dir} holds an interrupted copy ({len(existing)} of {len(plan)} files were "
            "written before it stopped); pass overwrite=True (--overwrite on the command line) "
            "to finish it"
        )
    if existing:
        shown = ", ".join(existing[:5]) + (
            f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        )
        raise FileExistsError(
            f"{out_dir} already has {shown}; pass overwrite=True (--overwrite on the command "
            "line) to replace them"
        )


def _check_source(wheel: Path | None, requirement: str | None) -> None:
    """A clear error for an impossible choice of how to install bezkit."""
    if wheel is not None and requirement is not None:
        raise ValueError("choose one way to install bezkit: a wheel or a requirement, not both")
    if requirement is not None and (
        not requirement.strip().startswith("bezkit") or "\n" in requirement
    ):
        raise ValueError(
            f"the bezkit requirement must be one pip requirement line for bezkit, e.g. "
            f"'{EXTRAS} @ git+https://github.com/OWNER/bezkit@TAG'; got {requirement!r}"
        )


def _lesson_plan(kit: KitFiles, student: bool) -> tuple[dict[Path, Path | bytes], int]:
    """The lessons (student versions or copies) and their notes, and the number of stubs."""
    lessons = kit.lessons()
    if not lessons:
        raise FileNotFoundError(f"no lessons in {kit.notebooks}")
    plan: dict[Path, Path | bytes] = {}
    stubs = 0
    for notebook in lessons:
        if student:
            nb, n = student_notebook(read_notebook(notebook), name=notebook.name)
            stubs += n
            plan[Path("notebooks") / notebook.name] = notebook_json(nb).encode()
        else:
            plan[Path("notebooks") / notebook.name] = notebook
    for name in ("sanitize.cfg", "README.md", "NOTATION.md"):
        if (kit.notebooks / name).is_file():
            plan[Path("notebooks") / name] = kit.notebooks / name
    return plan, stubs


def copy_course(
    out_dir: Path,
    *,
    student: bool = False,
    overwrite: bool = False,
    files: KitFiles | None = None,
    bezkit_wheel: Path | None = None,
    bezkit_requirement: str | None = None,
) -> CourseKit:
    """Write the course folder described in the module docstring into ``out_dir``.

    ``files`` defaults to :func:`bezkit.course.kit_files` (the installed package's copy).
    ``bezkit_wheel`` (a ``bezkit-*.whl``) is shipped in ``wheels/``; ``bezkit_requirement`` (a pip
    requirement line, e.g. a git URL) goes into ``requirements.txt``; at most one of them. Raises
    ``FileExistsError`` listing the files it would replace unless ``overwrite``; nothing is written
    then.
    """
    _check_source(bezkit_wheel, bezkit_requirement)
    requirements = requirements_txt(wheel=bezkit_wheel, requirement=bezkit_requirement)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a folder")
    kit = kit_files() if files is None else files
    lessons = kit.lessons()
    plan, stubs = _lesson_plan(kit, student)
    for f in sorted(p for p in kit.checkpoints.rglob("*") if p.is_file()):
        plan[Path("data/checkpoints") / f.relative_to(kit.checkpoints)] = f
    if kit.results.is_file():
        plan[Path("data/results/results.json")] = kit.results
    plan[Path(".github/workflows/lessons.yml")] = WORKFLOW.encode()
    plan[Path("pytest.ini")] = PYTEST_INI.encode()
    plan[Path("requirements.txt")] = requirements.encode()
    if bezkit_wheel is not None:
        plan[Path("wheels") / Path(bezkit_wheel).name] = Path(bezkit_wheel)
    install = install_choice(wheel=bezkit_wheel, requirement=bezkit_requirement)
    readme = lecturer_readme([p.name for p in lessons], student=student, install=install)
    plan[Path("README.md")] = readme.encode()

    _refuse_existing(out_dir, plan, overwrite=overwrite)
    marker = out_dir / INCOMPLETE_MARKER
    # the marker says "incomplete" until the last file is written: a killed copy is not silent
    atomic_write_bytes(marker, INCOMPLETE_TEXT.encode())
    for rel, what in plan.items():
        if isinstance(what, bytes):
            atomic_write_bytes(out_dir / rel, what)
        else:
            atomic_write(out_dir / rel, partial(shutil.copyfile, what))
    marker.unlink()
    return CourseKit(root=out_dir, files=tuple(plan), student=student, stubs=stubs)
