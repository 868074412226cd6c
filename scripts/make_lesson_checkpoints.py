"""Regenerate the pretrained lesson checkpoints in ``data/checkpoints/`` (bit-for-bit on a given
machine: every training is seeded and runs on one torch thread).

    python scripts/make_lesson_checkpoints.py            # refuses to replace existing files
    python scripts/make_lesson_checkpoints.py --overwrite
    python scripts/make_lesson_checkpoints.py --out /tmp/ckpt
    python scripts/make_lesson_checkpoints.py --students --overwrite

Writes ``8gaussians-moons-{1,2,3}rf.{safetensors,json}`` by the recipes of
``bezkit.lessons`` (the same as ``notebooks/README.md``); about 15 s on one CPU core.

``--students`` instead regenerates the students lessons 04 and 06 load
(``students-04/``, ``students-06/``): it runs those lessons top to bottom with
``$BEZKIT_SAVE_STUDENTS`` set, so the recipe is the one in the lesson's cell (about a minute).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bezkit.lessons import SAVE_STUDENTS_ENV, make_lesson_checkpoints

ROOT = Path(__file__).resolve().parents[1]
#: The lessons that train students, and the name their cell passes to ``lesson_students``.
STUDENT_LESSONS = {"04": "04_bezier_distillation.ipynb", "06": "06_bdense.ipynb"}


def make_students(out: Path, *, overwrite: bool) -> None:
    """Run the student lessons with ``$BEZKIT_SAVE_STUDENTS=out`` (they write their students)."""
    import nbformat  # the notebook tools are an optional dependency (the `notebooks` extra)
    from nbclient import NotebookClient  # likewise

    for name in STUDENT_LESSONS:
        existing = out / f"students-{name}" / "students.json"
        if existing.exists() and not overwrite:
            raise SystemExit(f"{existing} exists; pass --overwrite to regenerate it")
    os.environ[SAVE_STUDENTS_ENV] = str(out.resolve())
    for notebook in STUDENT_LESSONS.values():
        nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3").execute(
            resources={"metadata": {"path": str(ROOT / "notebooks")}}
        )
        print(f"ran {notebook}: its students are in {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "data" / "checkpoints", help="output folder"
    )
    parser.add_argument("--rounds", type=int, default=3, help="reflow rounds K (k = 1..K)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing checkpoints")
    parser.add_argument(
        "--students", action="store_true", help="regenerate the students of lessons 04 and 06"
    )
    args = parser.parse_args(argv)
    if args.students:
        make_students(args.out, overwrite=args.overwrite)
        return 0
    make_lesson_checkpoints(args.out, rounds=args.rounds, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
