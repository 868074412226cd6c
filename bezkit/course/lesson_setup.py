"""The one call at the top of every lesson: seeds, one torch thread, figure defaults, data paths.

Replaces the same eight lines each notebook used to paste::

    from bezkit.course import setup_lesson

    lesson = setup_lesson()  # seed 0, one thread, figure style; finds data/checkpoints
    SEED, CHECKPOINTS, RETRAIN = lesson.seed, lesson.checkpoints, lesson.retrain

The checkpoints folder is, in this order: ``$BEZKIT_CHECKPOINTS``; ``data/checkpoints`` under the
lesson's root (the working directory, or its parent when that is a ``notebooks`` folder: the layout
of the project and of a course written by ``bezkit lessons copy``); the copy that ships inside the
installed package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch

from bezkit.course.kit_manifest import kit_files
from bezkit.plot.style import STYLE

__all__ = ["FIGURE_STYLE", "LessonSetup", "lesson_root", "setup_lesson"]

#: What the lessons change in :data:`bezkit.plot.STYLE`: a screen dpi of 100 (the inline backend
#: stores each figure at its ``figure.dpi``), enough for 9-point text to read at about 12 pixels
#: while each stored figure stays well under the 300 kB a notebook cell may hold.
FIGURE_STYLE: dict[str, Any] = {"figure.dpi": 100}


@dataclass(frozen=True)
class LessonSetup:
    """What :func:`setup_lesson` settled: the seed, the folders, and whether to retrain."""

    seed: int
    root: Path
    checkpoints: Path
    retrain: bool


def lesson_root(cwd: Path | None = None) -> Path:
    """The folder that holds ``notebooks/`` and ``data/``: ``cwd`` or its parent."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    return cwd.parent if cwd.name == "notebooks" else cwd


def _checkpoints(root: Path) -> Path:
    env = os.environ.get("BEZKIT_CHECKPOINTS")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise FileNotFoundError(f"BEZKIT_CHECKPOINTS={env} is not a folder")
        return path
    local = root / "data" / "checkpoints"
    if local.is_dir():
        return local
    return kit_files().checkpoints


def setup_lesson(
    *, seed: int = 0, threads: int = 1, retrain: bool = False, style: bool = True
) -> LessonSetup:
    """Seed torch, use ``threads`` torch threads, apply the figure style, find the data.

    The style is :data:`bezkit.plot.STYLE` updated with :data:`FIGURE_STYLE`.

    One thread is as fast as several for the lessons' tiny networks, and the numbers then do not
    depend on the number of cores. ``retrain=True`` asks the lesson to train its flows instead of
    loading the checkpoints (the lessons read ``lesson.retrain``).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    if style:
        rc: Any = matplotlib.rcParams  # typed with literal keys; STYLE's keys are plain strings
        rc.update({**STYLE, **FIGURE_STYLE})
    root = lesson_root()
    return LessonSetup(seed=seed, root=root, checkpoints=_checkpoints(root), retrain=retrain)
