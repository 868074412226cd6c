"""The lessons' pretrained flows (``notebooks/``): recipes, loading, regeneration.

**Lesson checkpoints.** Lessons 01 to 06 share three small 2D flows between the 8 Gaussians and the
two moons, stored as ``data/checkpoints/8gaussians-moons-{1,2,3}rf`` (``.safetensors`` + ``.json``,
written by :func:`bezkit.training.model_io.save_model`). Their recipes (seeded, deterministic on a
given machine with one torch thread):

- ``1rf``: ``new_mlp(2, hidden=128, seed=0)`` trained with ``FlowMatchingLoss()`` (linear path,
  tangent target, uniform t) on ``IndependentCoupling(8gaussians, moons)``,
  ``TrainConfig(steps=2000, batch_size=256, lr=3e-3, seed=0)``, no EMA;
- ``{k}rf`` for k = 2, 3: ``reflow_round(previous, 8gaussians, TrainConfig(steps=800,
  batch_size=256, lr=1e-3, seed=k), ReflowConfig(k=k, n_pairs=5000, teacher_steps=100,
  pair_seed=k))``.

:func:`lesson_flows` loads them when they exist and trains them otherwise (or when asked);
:func:`make_lesson_checkpoints` (``python scripts/make_lesson_checkpoints.py``) regenerates them.

**Lesson students.** Lessons 04 and 06 train several small students of these flows in a cell
that holds their recipe. :func:`lesson_students` runs that cell's training function, or loads the
students it trained before from ``data/checkpoints/students-<lesson>/`` (one checkpoint per
student and a ``students.json`` manifest), which keeps the lessons (and their CI) fast;
``setup_lesson(retrain=True)`` trains them again. ``python scripts/make_lesson_checkpoints.py
--students`` regenerates those files by running the lessons with ``$BEZKIT_SAVE_STUDENTS`` set.

The experiment's ``results.json`` and its readers live in :mod:`bezkit.experiments.results`;
:func:`bezkit.experiments.lesson_results` loads it for lesson 05 (or runs a small experiment).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from bezkit.couplings.independent import IndependentCoupling
from bezkit.data.toy2d import get_sampler
from bezkit.files.atomic import write_json
from bezkit.methods.flow import new_mlp
from bezkit.methods.reflow import ReflowConfig, reflow_round
from bezkit.methods.result import RecipeResult
from bezkit.training.config import TrainConfig
from bezkit.training.model_io import load_model, save_model
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import TrainResult, train

_T = TypeVar("_T")

__all__ = [
    "LESSON_PAIR",
    "SAVE_STUDENTS_ENV",
    "checkpoint_name",
    "default_checkpoint_dir",
    "lesson_flows",
    "lesson_students",
    "make_lesson_checkpoints",
    "reflow_config",
    "rf1_config",
    "save_lesson_students",
    "train_lesson_1rf",
    "train_lesson_reflow",
]

#: The (source, target) of the lesson checkpoints.
LESSON_PAIR: tuple[str, str] = ("8gaussians", "moons")

# -- the lesson checkpoints -----------------------------------------------------------------------


def checkpoint_name(k: int, pair: tuple[str, str] = LESSON_PAIR) -> str:
    """``8gaussians-moons-{k}rf``: the file stem of the lesson's k-RF."""
    return f"{pair[0]}-{pair[1]}-{k}rf"


def default_checkpoint_dir() -> Path:
    """``data/checkpoints`` of the checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def rf1_config(seed: int = 0) -> TrainConfig:
    """The 1-RF's training configuration (lesson 01's recipe)."""
    return TrainConfig(steps=2000, batch_size=256, lr=3e-3, seed=seed, progress=False, device="cpu")


def reflow_config(k: int, seed: int = 0) -> TrainConfig:
    """The k-RF's training configuration (lesson 02's recipe), k >= 2."""
    return TrainConfig(
        steps=800, batch_size=256, lr=1e-3, seed=seed + k, progress=False, device="cpu"
    )


def train_lesson_1rf(seed: int = 0) -> TrainResult:
    """Train the lesson 1-RF from scratch (the recipe of the module docstring)."""
    source, target = (get_sampler(name) for name in LESSON_PAIR)
    return train(
        new_mlp(2, hidden=128, seed=seed),
        FlowMatchingLoss(),
        IndependentCoupling(source, target).sample,
        rf1_config(seed),
    )


def train_lesson_reflow(previous: nn.Module, k: int, seed: int = 0) -> RecipeResult:
    """Train the lesson k-RF (k >= 2) on 5000 pairs of the (k-1)-RF ``previous``."""
    return reflow_round(
        previous,
        get_sampler(LESSON_PAIR[0]),
        reflow_config(k, seed),
        ReflowConfig(k=k, n_pairs=5000, teacher_steps=100, pair_seed=seed + k),
    )


def _recipe(k: int, seed: int) -> dict[str, Any]:
    if k == 1:
        return {
            "method": "1-RF",
            "pair": list(LESSON_PAIR),
            "model": f"new_mlp(2, hidden=128, seed={seed})",
            "loss": "FlowMatchingLoss() (linear path, tangent target, uniform t)",
            "coupling": "IndependentCoupling(8gaussians, moons)",
            "train": rf1_config(seed).to_dict(),
        }
    return {
        "method": f"{k}-RF",
        "pair": list(LESSON_PAIR),
        "teacher": checkpoint_name(k - 1),
        "reflow_round": {"k": k, "n_pairs": 5000, "teacher_steps": 100, "pair_seed": seed + k},
        "train": reflow_config(k, seed).to_dict(),
    }


def _single_thread(fn: Callable[[], _T]) -> _T:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def lesson_flows(
    checkpoints: str | Path | None = None,
    *,
    rounds: int = 3,
    retrain: bool = False,
    seed: int = 0,
    verbose: bool = True,
) -> dict[int, nn.Module]:
    """The lesson's k-RFs for k = 1..``rounds``: ``{k: model}`` (eval mode, CPU).

    Each one is loaded from ``checkpoints`` (default :func:`default_checkpoint_dir`) when its file
    exists and ``retrain`` is False; otherwise it is trained by its recipe (a few seconds each; a
    round whose teacher was trained is trained too, so a mix never pairs a new teacher with an old
    student). Prints one line per model when ``verbose``."""
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    folder = Path(checkpoints) if checkpoints is not None else default_checkpoint_dir()
    flows: dict[int, nn.Module] = {}
    trained_any = False
    for k in range(1, rounds + 1):
        path = folder / checkpoint_name(k)
        if not retrain and not trained_any and path.with_suffix(".safetensors").exists():
            flows[k] = load_model(path)[0]
            if verbose:
                print(f"loaded the {k}-RF from {path.name}")
            continue
        trained_any = True
        t0 = time.perf_counter()
        if k == 1:
            model = _single_thread(lambda: train_lesson_1rf(seed).model)
        else:
            model = _single_thread(partial(train_lesson_reflow, flows[k - 1], k, seed)).model
        flows[k] = model.eval()
        if verbose:
            print(f"trained the {k}-RF in {time.perf_counter() - t0:.1f} s")
    return flows


def make_lesson_checkpoints(
    out_dir: str | Path | None = None,
    *,
    rounds: int = 3,
    seed: int = 0,
    overwrite: bool = False,
    verbose: bool = True,
) -> list[Path]:
    """Train the lesson k-RFs (k = 1..``rounds``) by their recipes on one torch thread and save
    them with :func:`bezkit.training.model_io.save_model`; returns the ``.safetensors`` paths.

    The metadata records the recipe and the training losses (lesson 01 plots them). Training is
    seeded, so running this twice on one machine writes the same tensors."""
    folder = Path(out_dir) if out_dir is not None else default_checkpoint_dir()
    written: list[Path] = []
    previous: nn.Module | None = None
    for k in range(1, rounds + 1):
        t0 = time.perf_counter()
        if k == 1:
            res = _single_thread(lambda: train_lesson_1rf(seed))
            model, losses = res.model, res.losses
        else:
            if previous is None:  # k >= 2: the loop trained the (k-1)-RF first
                raise RuntimeError(f"the {k}-RF needs the {k - 1}-RF, which was not trained")
            rnd = _single_thread(partial(train_lesson_reflow, previous, k, seed))
            model, losses = rnd.model, rnd.losses
        seconds = time.perf_counter() - t0
        meta = {
            "recipe": _recipe(k, seed),
            "regenerate": "python scripts/make_lesson_checkpoints.py",
            "losses": [round(float(v), 6) for v in losses],
        }
        path = save_model(folder / checkpoint_name(k), model, meta, overwrite=overwrite)
        written.append(path)
        if verbose:
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB) in {seconds:.1f} s")
        previous = model.eval()
    return written


# -- the lesson students --------------------------------------------------------------------------

#: When this environment variable names a folder, :func:`lesson_students` always trains and writes
#: the students there (``scripts/make_lesson_checkpoints.py --students`` sets it).
SAVE_STUDENTS_ENV = "BEZKIT_SAVE_STUDENTS"
STUDENTS_MANIFEST = "students.json"


def _students_folder(checkpoints: str | Path | None, name: str) -> Path:
    if not re.fullmatch(r"[0-9a-z][0-9a-z_-]*", name):
        raise ValueError(f"a lesson's students need a short lower-case name, got {name!r}")
    root = Path(checkpoints) if checkpoints is not None else default_checkpoint_dir()
    return root / f"students-{name}"


def save_lesson_students(
    name: str,
    students: Mapping[str, nn.Module],
    checkpoints: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``students`` (label -> model) to ``<checkpoints>/students-<name>/``: one checkpoint
    per student (``00``, ``01``, ... in the mapping's order) and ``students.json`` with the labels.
    Returns the folder. Existing files are an error unless ``overwrite``."""
    if not students:
        raise ValueError(f"no students to save for {name!r}")
    folder = _students_folder(checkpoints, name)
    manifest = folder / STUDENTS_MANIFEST
    if manifest.exists() and not overwrite:
        raise FileExistsError(f"{manifest} exists; pass overwrite=True to replace the students")
    folder.mkdir(parents=True, exist_ok=True)
    stems = [f"{i:02d}" for i in range(len(students))]
    for stem, (label, model) in zip(stems, students.items(), strict=True):
        meta = {"lesson_students": name, "label": label, "regenerate": REGENERATE_STUDENTS}
        save_model(folder / stem, model, meta, overwrite=overwrite)
    # written last and atomically: a folder holds its students only once every checkpoint is whole
    write_json(manifest, {"students": dict(zip(stems, students, strict=True))}, indent=1)
    return folder


REGENERATE_STUDENTS = "python scripts/make_lesson_checkpoints.py --students --overwrite"


def lesson_students(
    name: str,
    train_students: Callable[[], Mapping[str, nn.Module]],
    checkpoints: str | Path | None = None,
    *,
    retrain: bool = False,
    verbose: bool = True,
) -> dict[str, nn.Module]:
    """A lesson's students, label -> model (eval mode, CPU): loaded from
    ``<checkpoints>/students-<name>/`` (see :func:`save_lesson_students`) when it holds them and
    ``retrain`` is False, else ``train_students()`` on one torch thread.

    The lesson's cell defines ``train_students`` (its recipe, seeded), so both paths give the same
    weights on a given machine. With ``$BEZKIT_SAVE_STUDENTS`` set to a folder the students are
    always trained and written there (overwriting)."""
    save_to = os.environ.get(SAVE_STUDENTS_ENV)
    folder = _students_folder(checkpoints, name)
    manifest = folder / STUDENTS_MANIFEST
    if not retrain and not save_to and manifest.exists():
        labels = json.loads(manifest.read_text())["students"]
        students = {label: load_model(folder / stem)[0] for stem, label in labels.items()}
        if verbose:
            print(f"loaded {len(students)} students from {folder.name} (retrain=True trains them)")
        return students
    t0 = time.perf_counter()
    trained = _single_thread(train_students)
    if not isinstance(trained, Mapping) or not trained:
        raise TypeError(f"train_students must return a non-empty dict of models, got {trained!r}")
    students = {str(label): model.eval() for label, model in trained.items()}
    if verbose:
        print(f"trained {len(students)} students in {time.perf_counter() - t0:.1f} s")
    if save_to:
        written = save_lesson_students(name, students, save_to, overwrite=True)
        if verbose:
            print(f"wrote them to {written}")
    return students
