"""Where the lessons and their data are: inside the installed package, or in a source checkout.

A wheel carries ``bezkit/course/kit/`` (``notebooks/*.ipynb``, ``notebooks/sanitize.cfg``,
``data/checkpoints/**``, ``data/results/results.json``), copied there at build time by the project's
``setup.py`` from the top-level ``notebooks/`` and ``data/`` folders. A source checkout (or an
editable install) has no such folder and reads those top-level folders directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["KIT_DIR", "KitFiles", "kit_files"]

#: The packaged copy, relative to this file's folder.
KIT_DIR = "kit"


@dataclass(frozen=True)
class KitFiles:
    """The folders a course is copied from, and where they came from (``packaged`` or ``source``)."""

    root: Path
    origin: str

    @property
    def notebooks(self) -> Path:
        """The folder of the lesson notebooks."""
        return self.root / "notebooks"

    @property
    def checkpoints(self) -> Path:
        """The folder of the lessons' checkpoints and cached students."""
        return self.root / "data" / "checkpoints"

    @property
    def results(self) -> Path:
        """The experiment's ``results.json`` that lesson 05 reads."""
        return self.root / "data" / "results" / "results.json"

    def lessons(self) -> list[Path]:
        """The lesson notebooks, in order."""
        return sorted(self.notebooks.glob("[0-9][0-9]_*.ipynb"))


def kit_files() -> KitFiles:
    """The packaged kit when it exists, else the source checkout; a clear error when neither."""
    packaged = Path(__file__).resolve().parent / KIT_DIR
    if (packaged / "notebooks").is_dir():
        return KitFiles(packaged, "packaged")
    source = Path(__file__).resolve().parents[2]
    if (source / "notebooks").is_dir() and (source / "data" / "checkpoints").is_dir():
        return KitFiles(source, "source")
    raise FileNotFoundError(
        f"the lessons are not installed: neither {packaged} nor {source / 'notebooks'} exists; "
        "reinstall bezkit from a wheel or an sdist built from the project"
    )
