"""``read_resume_point``: the planned total comes from the checkpoint itself, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bezkit.training.checkpoint import save_checkpoint
from bezkit.training.resume import RUN_KEY, ResumeError, read_resume_point


def _checkpoint(path: Path, *, step: int, train_config: dict, run: dict) -> Path:
    meta = {"step": step, "train_config": train_config, RUN_KEY: run}
    save_checkpoint(path, {"w": torch.zeros(2)}, meta)
    return path


def test_total_steps_come_from_the_train_config(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "a", step=4, train_config={"steps": 10}, run={"steps": 10})
    point = read_resume_point(path, required=("steps",))
    assert (point.step, point.total_steps, point.finished) == (4, 10, False)


def test_a_checkpoint_without_its_total_steps_is_refused(tmp_path: Path) -> None:
    # a missing total must not be taken to be the current step (which would read as "finished")
    path = _checkpoint(tmp_path / "b", step=4, train_config={"lr": 1e-3}, run={})
    with pytest.raises(ResumeError, match="no total number of steps"):
        read_resume_point(path)


def test_inconsistent_totals_are_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "c", step=4, train_config={"steps": 10}, run={"steps": 12})
    with pytest.raises(ResumeError, match="inconsistent"):
        read_resume_point(path)
