"""``read_resume_point``: the planned total comes from the checkpoint itself, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bezkit.training.checkpoint import save_checkpoint
from bezkit.training.resume import (
    RUN_KEY,
    ResumeError,
    interrupted_at,
    read_resume_point,
    resume_run,
)


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


def _fingerprints(table: dict[str, str | None]):
    return lambda name: table.get(name)


def test_resume_run_merges_the_options_and_checks_the_new_total(tmp_path: Path) -> None:
    run = {"steps": 10, "lr": 0.5, "source": "a.csv", "source_sha256": "abc"}
    path = _checkpoint(tmp_path / "r", step=4, train_config={"steps": 10}, run=run)
    same = _fingerprints({"a.csv": "abc"})
    resumed = resume_run(
        path, {"steps": 20}, required=("steps", "lr"), changeable=("steps",), fingerprint=same
    )
    assert resumed.step == 4 and resumed.settings == {**run, "steps": 20}
    assert resume_run(path, {}, required=(), fingerprint=same).settings == run
    with pytest.raises(ResumeError, match=r"--lr 0\.1 conflicts"):
        resume_run(path, {"lr": 0.1}, required=(), fingerprint=same)
    with pytest.raises(ResumeError, match=r"--steps 3 must exceed the step .* \(4\)"):
        resume_run(path, {"steps": 3}, required=(), changeable=("steps",), fingerprint=same)


def test_resume_run_refuses_a_changed_data_file_and_a_finished_run(tmp_path: Path) -> None:
    run = {"steps": 4, "source": "a.csv", "source_sha256": "abc", "target": "moons"}
    path = _checkpoint(tmp_path / "f", step=4, train_config={"steps": 4}, run=run)
    changed = _fingerprints({"a.csv": "def"})
    with pytest.raises(ResumeError, match=r"source data file a\.csv changed"):
        resume_run(path, {"steps": 8}, required=(), changeable=("steps",), fingerprint=changed)
    with pytest.raises(ResumeError, match="the resumed run is complete"):
        resume_run(path, {}, required=(), fingerprint=_fingerprints({"a.csv": "abc"}))


def test_interrupted_at_reads_the_train_config_total(tmp_path: Path) -> None:
    stopped = _checkpoint(tmp_path / "s", step=4, train_config={"steps": 10}, run={})
    done = _checkpoint(tmp_path / "d", step=10, train_config={"steps": 10}, run={})
    assert interrupted_at(stopped) == (4, 10)
    assert interrupted_at(done) is None
    assert interrupted_at(tmp_path / "missing") is None
