"""Build hook: ship the lessons and their small checkpoints inside the package.

All metadata lives in pyproject.toml. This only extends ``build_py`` so that a wheel (and an
install from the sdist) carries ``bezkit/course/kit/`` with a copy of the top-level
``notebooks/`` lessons, ``data/checkpoints/`` and ``data/results/results.json``; the project keeps
those folders where they are. ``bezkit lessons copy`` reads the packaged copy
(``bezkit.course.kit_manifest``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
KIT = Path("bezkit") / "course" / "kit"


def kit_sources() -> list[Path]:
    """The files (relative to the project root) that go into ``bezkit/course/kit``."""
    files = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
    files += [ROOT / "notebooks" / name for name in ("sanitize.cfg", "README.md", "NOTATION.md")]
    files += sorted(p for p in (ROOT / "data" / "checkpoints").rglob("*") if p.is_file())
    results = ROOT / "data" / "results" / "results.json"
    if results.is_file():
        files.append(results)
    return [p.relative_to(ROOT) for p in files]


class build_py_with_lessons(build_py):
    def run(self) -> None:
        super().run()
        missing = [str(p) for p in kit_sources() if not (ROOT / p).is_file()]
        if missing or not any(p.suffix == ".ipynb" for p in kit_sources()):
            raise SystemExit(f"cannot ship the lessons: missing {missing or 'notebooks/*.ipynb'}")
        for rel in kit_sources():
            target = Path(self.build_lib) / KIT / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, target)


setup(cmdclass={"build_py": build_py_with_lessons})
