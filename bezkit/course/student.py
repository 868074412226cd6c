"""Student versions of the lessons: every solution block replaced by a stub.

In a lesson, a code cell tagged ``solution`` (cell metadata ``tags``) holds one or more blocks::

    def bezier_tangent(points, t):
        # BEGIN SOLUTION
        ...
        # END SOLUTION

The student version replaces each block, markers included, by one line at the marker's
indentation, ``raise NotImplementedError("exercise: write your code here")``, and clears the
cell's outputs. A cell tagged ``check`` (the call of a :mod:`bezkit.exercises` check after it)
keeps its code, loses its outputs, and loses its ``# NBVAL_CHECK_OUTPUT`` marker: with a stub its
output is "not implemented yet", not the stored "correct".

No stored output may answer a question before the student has tried it: from the first
predict-then-run question (a cell that calls ``show_question(``) or the first exercise (a
``solution`` cell), whichever comes first, every code cell loses its outputs and its
``# NBVAL_CHECK_OUTPUT`` marker (the figure that shows where one Euler step lands, the table that
answers a prediction). The cells above keep theirs. Every cell's code is unchanged but for the
stubs, so the student version runs top to bottom without an error, each check reporting *not
implemented yet*.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bezkit.files.atomic import atomic_write_bytes

__all__ = [
    "BEGIN",
    "CHECK_TAG",
    "END",
    "QUESTION_CALL",
    "SOLUTION_TAG",
    "STUB",
    "StudentVersion",
    "answers_start",
    "notebook_json",
    "read_notebook",
    "student_notebook",
    "student_source",
    "write_notebook",
    "write_student_versions",
]

SOLUTION_TAG = "solution"
CHECK_TAG = "check"
BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = 'raise NotImplementedError("exercise: write your code here")'
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
QUESTION_CALL = "show_question("

_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker># (?:BEGIN|END) SOLUTION)[ \t]*$")


@dataclass(frozen=True)
class StudentVersion:
    """One written student notebook: where, and how many blocks became stubs."""

    source: Path
    path: Path
    stubs: int


def student_source(source: str, *, where: str = "cell") -> tuple[str, int]:
    """``source`` with every solution block replaced by :data:`STUB`; and the number of blocks.

    Raises ``ValueError`` naming ``where`` for an unmatched or nested marker.
    """
    out: list[str] = []
    inside: str | None = None
    blocks = 0
    for number, line in enumerate(source.splitlines(), start=1):
        match = _MARKER.match(line)
        if match is None:
            if inside is None:
                out.append(line)
            continue
        if match["marker"] == BEGIN:
            if inside is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution block")
            inside = match["indent"]
            out.append(f"{inside}{STUB}")
            blocks += 1
        else:
            if inside is None:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = None
    if inside is not None:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out), blocks


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell: Any) -> str:
    """A cell's source as one string (a notebook file may store it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def read_notebook(path: Path) -> dict[str, Any]:
    """A notebook file as a plain dict (nbformat 4 JSON), with a clear error for anything else."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a notebook (invalid JSON: {err})") from err
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or "cells" not in nb:
        raise ValueError(f"{path} is not an nbformat 4 notebook")
    return nb


def notebook_json(notebook: Any) -> str:
    """The notebook as Jupyter writes it: one-space indents, sources as lists of lines."""
    nb = copy.deepcopy(dict(notebook))
    for cell in nb["cells"]:
        cell["source"] = _source(cell).splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def answers_start(cells: Any) -> int:
    """The index of the first code cell that asks a question (``show_question(``) or holds an
    exercise (tagged ``solution``); ``len(cells)`` when there is none. From there on a student
    version stores no output."""
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        if SOLUTION_TAG in _tags(cell) or QUESTION_CALL in _source(cell):
            return index
    return len(cells)


def _without_marker(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() != CHECK_MARKER)


def student_notebook(notebook: Any, *, name: str = "notebook") -> tuple[Any, int]:
    """A student copy of ``notebook`` (a notebook dict; not modified) and its stub count.

    Raises ``ValueError`` when a cell has solution markers but no ``solution`` tag, or the tag but
    no block: a solution must never reach a student unnoticed.
    """
    nb = copy.deepcopy(notebook)
    stubs = 0
    hide_from = answers_start(nb["cells"])
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        where = f"{name} cell {index}"
        tags = _tags(cell)
        source = _source(cell)
        has_marker = any(_MARKER.match(line) for line in source.splitlines())
        if SOLUTION_TAG in tags:
            source, blocks = student_source(source, where=where)
            if blocks == 0:
                raise ValueError(f"{where} is tagged {SOLUTION_TAG!r} but has no {BEGIN} block")
            stubs += blocks
        elif has_marker:
            raise ValueError(f"{where} has {BEGIN}/{END} markers but no {SOLUTION_TAG!r} tag")
        hide = index >= hide_from or SOLUTION_TAG in tags or CHECK_TAG in tags
        cell["source"] = _without_marker(source) if hide else source
        if hide:
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.setdefault("metadata", {}).setdefault("bezkit", {})["version"] = "student"
    return nb, stubs


def write_notebook(notebook: Any, path: Path) -> None:
    """Write ``notebook`` to ``path`` atomically (:func:`bezkit.files.atomic.atomic_write_bytes`)."""
    atomic_write_bytes(path, notebook_json(notebook).encode("utf-8"))


def write_student_versions(
    notebooks: Iterable[Path], out_dir: Path, *, overwrite: bool = False
) -> list[StudentVersion]:
    """Write the student version of each notebook into ``out_dir`` (same file names).

    Refuses (``FileExistsError``, listing them) to replace existing files unless ``overwrite``.
    Every notebook is converted before anything is written, so a bad one writes nothing.
    """
    out_dir = Path(out_dir)
    sources = [Path(p) for p in notebooks]
    if not sources:
        raise ValueError("no notebooks to convert")
    targets = [out_dir / p.name for p in sources]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"would overwrite {', '.join(existing)} (pass overwrite=True; --overwrite on the command line)"
        )
    converted = []
    for source in sources:
        converted.append(student_notebook(read_notebook(source), name=source.name))
    written = []
    for source, target, (nb, stubs) in zip(sources, targets, converted, strict=True):
        write_notebook(nb, target)
        written.append(StudentVersion(source=source, path=target, stubs=stubs))
    return written
