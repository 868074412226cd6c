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
``--batch-size``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bezkit.training.checkpoint import load_checkpoint

__all__ = ["RUN_KEY", "ResumeError", "ResumePoint", "merge_settings", "read_resume_point"]

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
