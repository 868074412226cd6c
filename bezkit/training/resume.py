"""Resuming a run: what a checkpoint must carry, and how the options of the resume meet it.

Every checkpoint a run writes, periodic or final, carries under ``"run"`` the settings that
define the run (for ``bezkit train``: data and their SHA-256, coupling, objective, model size,
batch size, lr, EMA decay, seed, total steps, checkpoint interval), beside the training state
(``step``, ``train_config``, optimizer and EMA tensors). A resume rebuilds the run from them:

    settings = recorded settings
    an option given again with the same value        -> fine
    an option given with a different value           -> ResumeError (unless it may change)
    a checkpoint without step, train_config or run, or with a recorded setting missing
                                                     -> ResumeError: never a fallback to defaults

Settings are named as the command-line options that set them (``batch_size`` is
``--batch-size``). A run's planned total is ``train_config["steps"]`` (the trainer's own total,
written in every checkpoint; ``run["steps"]``, when recorded, must equal it).
:func:`resume_run` does the whole check of a resume; :func:`interrupted_at` tells whether a
checkpoint holds a run that stopped before its end (so a new run must not overwrite it silently).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bezkit.training.checkpoint import CheckpointError, load_checkpoint, read_metadata

__all__ = [
    "RUN_KEY",
    "ResumeError",
    "ResumePoint",
    "ResumedRun",
    "check_processes",
    "interrupted_at",
    "merge_settings",
    "processes_record",
    "read_resume_point",
    "resume_run",
]

RUN_KEY = "run"


class ResumeError(ValueError):
    """A run cannot be resumed as asked (names the checkpoint and what is wrong)."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class ResumePoint:
    """Where a run stopped: its checkpoint, step, planned total and recorded settings."""

    path: Path
    step: int
    total_steps: int
    settings: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def finished(self) -> bool:
        """Whether the run reached its planned total (``step >= total_steps``)."""
        return self.step >= self.total_steps


def read_resume_point(path: str | Path, *, required: Iterable[str] = ()) -> ResumePoint:
    """Read (and verify) the checkpoint a run is resumed from.

    Raises ``FileNotFoundError`` / :class:`~bezkit.training.checkpoint.CheckpointError` for a
    missing or altered checkpoint and :class:`ResumeError` when it does not hold a resumable run
    with every setting in ``required``.
    """
    meta = load_checkpoint(path).metadata
    step, cfg, run = meta.get("step"), meta.get("train_config"), meta.get(RUN_KEY)
    if not isinstance(step, int) or not isinstance(cfg, dict):
        raise ResumeError(f"{path} is not a training checkpoint (no step or train_config)")
    if not isinstance(run, dict):
        raise ResumeError(
            f"{path} does not record the settings of its run (written by an older bezkit or by "
            "another tool), so the run cannot be rebuilt exactly; start a new run"
        )
    missing = [name for name in required if name not in run]
    if missing:
        raise ResumeError(
            f"{path} does not record {', '.join(_flag(n) for n in missing)}, so the run cannot "
            "be rebuilt exactly; start a new run"
        )
    total = cfg.get("steps")  # the trainer's own total, written in every checkpoint
    if not isinstance(total, int):
        raise ResumeError(
            f"{path} records no total number of steps (train_config has no integer 'steps'), so "
            "the run cannot be rebuilt exactly; start a new run"
        )
    if "steps" in run and run["steps"] != total:
        raise ResumeError(
            f"{path} records {run['steps']} steps in its run settings but {total} in its "
            "train_config; the checkpoint is inconsistent, start a new run"
        )
    return ResumePoint(
        path=Path(path), step=step, total_steps=total, settings=dict(run), metadata=meta
    )


def merge_settings(
    recorded: Mapping[str, Any],
    given: Mapping[str, Any],
    *,
    changeable: Iterable[str] = (),
) -> dict[str, Any]:
    """The recorded settings, with the ``changeable`` ones the user gave replaced.

    A given setting outside ``changeable`` must equal the recorded value, else
    :class:`ResumeError` names both values.
    """
    may_change = set(changeable)
    merged = dict(recorded)
    for name, value in given.items():
        if name in may_change:
            merged[name] = value
        elif name not in recorded:
            raise ResumeError(f"{_flag(name)} is not a setting of the resumed run")
        elif recorded[name] != value:
            raise ResumeError(
                f"{_flag(name)} {value} conflicts with the resumed checkpoint, which has "
                f"{recorded[name]}; leave {_flag(name)} out to continue with the checkpoint's value"
            )
    return merged


@dataclass(frozen=True)
class ResumedRun:
    """The settings a resumed run continues with, and the step it continues from."""

    settings: dict[str, Any]
    step: int


def resume_run(
    path: str | Path,
    given: Mapping[str, Any],
    *,
    required: Iterable[str],
    changeable: Iterable[str] = (),
    fingerprint: Callable[[str], str | None],
) -> ResumedRun:
    """Check a resume of the run saved in ``path`` with the options ``given`` and return the
    settings it continues with.

    ``read_resume_point`` (every setting in ``required`` recorded), then ``merge_settings``; the
    merged ``steps`` (the new total) must exceed the step reached; and every data file the run
    recorded a fingerprint of (setting ``X_sha256`` for setting ``X``) must still have it:
    ``fingerprint(settings["X"])`` (e.g. the file's SHA-256; ``None`` for a named dataset).
    Anything that does not fit is a :class:`ResumeError` naming the option and both values.
    """
    point = read_resume_point(path, required=required)
    settings = merge_settings(point.settings, given, changeable=changeable)
    if settings["steps"] <= point.step:
        what = (
            f"--steps {settings['steps']} must exceed"
            if "steps" in given
            else "the resumed run is complete: pass a --steps that exceeds"
        )
        raise ResumeError(
            f"{what} the step of the resumed checkpoint ({point.step}); --steps is the new total"
        )
    for key, recorded in point.settings.items():
        role = key.removesuffix("_sha256")
        if role == key or recorded is None or role not in settings:
            continue
        if fingerprint(settings[role]) != recorded:
            raise ResumeError(
                f"the {role} data file {settings[role]} changed since the run started "
                f"(its SHA-256 is no longer {str(recorded)[:12]}...); resuming would train on "
                "other data: restore the file or start a new run"
            )
    return ResumedRun(settings=settings, step=point.step)


def processes_record(world_size: int, batch_per_process: int) -> dict[str, int]:
    """What a multi-process run records about its processes (under ``"processes"``): the world
    size, the batch of each process and the global batch ``world_size * batch_per_process`` that
    one optimizer step averages over."""
    return {
        "world_size": world_size,
        "batch_per_process": batch_per_process,
        "global_batch": world_size * batch_per_process,
    }


def check_processes(path: str | Path, recorded: Any, now: Mapping[str, int]) -> None:
    """Refuse to resume the run saved in ``path`` with another number of processes.

    Under torchrun each step averages ``world_size`` per-process batches, and rank ``r`` draws its
    batches from the seed ``seed + r``: a run resumed with another world size has another global
    batch and other random streams, so it would not continue as it started (and gives other
    weights than the uninterrupted run). ``recorded`` is the checkpoint's ``processes_record``
    (``None`` for a checkpoint written before it was recorded: nothing to check)."""
    if recorded is None:
        return
    if not isinstance(recorded, Mapping) or "world_size" not in recorded:
        raise ResumeError(f"{path} has an unreadable 'processes' record: {recorded!r}")
    if recorded["world_size"] == now["world_size"]:
        return
    was, is_ = recorded["world_size"], now["world_size"]
    raise ResumeError(
        f"{path} was trained by {was} process(es) x {recorded.get('batch_per_process')} images "
        f"(global batch {recorded.get('global_batch')}), but this run has {is_} process(es) x "
        f"{now['batch_per_process']} (global batch {now['global_batch']}): resuming with another "
        f"number of processes changes the global batch and every rank's random stream, so the run "
        f"would not continue as it started. Resume it with {was} process(es) "
        f"(torchrun --nproc_per_node {was}{'' if was > 1 else ', or without torchrun'}), "
        f"or pass overwrite=True (--overwrite) to start again"
    )


def interrupted_at(path: str | Path) -> tuple[int, int] | None:
    """``(step, total)`` if the checkpoint ``path`` holds a run that stopped before its end
    (``step < train_config["steps"]``), else ``None`` (also for a missing or unreadable file).

    Reads the metadata only, without verifying the tensors: a hint for an error message."""
    try:
        meta = read_metadata(path)[2]
    except (OSError, CheckpointError):
        return None
    step = meta.get("step")
    total = (meta.get("train_config") or {}).get("steps")
    if isinstance(step, int) and isinstance(total, int) and step < total:
        return step, total
    return None
