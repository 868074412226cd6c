"""Issue 17, re-run of the fault list against the experiment's stage store (session 16): the
faults found in the new code paths (publishing a staged run, interrupts outside the units)."""

from __future__ import annotations

import errno
import json
import os
import signal

import numpy as np
import pytest

from bezkit.cli import main
from bezkit.experiments import pair_units
from bezkit.experiments import run as run_module
from bezkit.experiments import staging as staging_module
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.staging import Staging, staging_dir
from bezkit.files import swap


def tiny(**overrides) -> ExperimentConfig:
    """One pair, 2 seeds, K = 2, one student: a run of a few seconds."""
    base = dict(
        seeds=2,
        rounds=2,
        student_rounds=1,
        methods=("rf-distill",),
        baselines=(),
        hidden=16,
        flow_steps=10,
        baseline_steps=5,
        round_steps=5,
        student_steps=5,
        n_pairs=64,
        teacher_steps=4,
        n_eval=64,
        eval_draws=1,
        many_steps=4,
        n_projections=16,
        budget_factors=(1,),
        progress=False,
    )
    base.update(overrides)
    return ExperimentConfig.quick(**base)


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs (no ``except Exception`` catches it)."""


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr(run_module, "write_figures", lambda results, paths, out: [])


def test_a_kill_right_after_the_swap_loses_no_file_of_the_folder(tmp_path, monkeypatch, no_figures):
    """Killed between the swap and the end of publishing, the previous folder's own files (here
    the user's notes) wait in the staging folder: the next command must finish the publishing
    (not discard them with the staging folder, nor call the finished run interrupted)."""
    out = tmp_path / "q"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    real = staging_module.exchange_folders

    def swap_then_die(new, old):
        real(new, old)
        raise Killed

    monkeypatch.setattr(staging_module, "exchange_folders", swap_then_die)
    with pytest.raises(Killed):
        run_module.run_experiment(tiny(), out, command="killed")
    monkeypatch.setattr(staging_module, "exchange_folders", real)
    run_id = json.loads((out / "results.json").read_text())["run_id"]
    assert staging_dir(out).is_dir()  # the kill's state: swapped, not yet tidied

    assert Staging.find(out) is None  # a finished run, not an interrupted one
    assert (out / "notes.txt").read_text() == "mine"
    assert not staging_dir(out).exists()
    assert json.loads((out / "results.json").read_text())["run_id"] == run_id


TINY_CLI = [
    "--quick", "--seeds", "2", "--flow-steps", "10", "--baseline-steps", "5", "--round-steps",
    "5", "--student-steps", "5", "--n-pairs", "64", "--n-eval", "64", "--methods", "rf-distill",
    "--baselines", "--budget-factors", "1", "--jobs", "1", "--quiet",
]  # fmt: skip


def test_ctrl_c_while_the_run_is_assembled_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """Every unit finished, Ctrl-C while the figures are drawn: exit 130 with the resume hint
    (it said only "interrupted"), and --resume finishes the run."""
    out = tmp_path / "q"

    def interrupted(results, paths, folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "write_figures", interrupted)
    assert main(["experiment", *TINY_CLI, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"bezkit experiment --resume {out}" in err and "1 of 1" in err, err
    monkeypatch.setattr(run_module, "write_figures", lambda results, paths, folder: [])
    assert main(["experiment", "--resume", str(out), "--quiet"]) == 0
    assert (out / "results.json").is_file() and not staging_dir(out).exists()


def test_a_rename_swap_killed_before_its_third_rename_is_finished(tmp_path, monkeypatch):
    """The swap without renameat2 (three renames): killed after the second, `out` holds the new
    run and the old content waits at `run.swap`; the next command refused the folder ("move one
    of them away by hand") instead of finishing the swap."""
    new, old = tmp_path / "staging" / "run", tmp_path / "out"
    new.mkdir(parents=True)
    old.mkdir()
    (new / "results.json").write_text("new")
    (old / "results.json").write_text("old")
    monkeypatch.setattr(swap, "_renameat2_exchange", lambda a, b: False)
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise Killed
        real(src, dst)

    monkeypatch.setattr(swap.os, "rename", rename)
    with pytest.raises(Killed):
        swap.exchange_folders(new, old)
    monkeypatch.setattr(swap.os, "rename", real)
    assert swap.finish_interrupted_swap(new, old)
    assert (old / "results.json").read_text() == "new"
    assert (new / "results.json").read_text() == "old"
    assert not swap.finish_interrupted_swap(new, old)


@pytest.mark.filterwarnings("ignore:.*fewer than 512 points")
def test_resume_refuses_a_data_file_that_changed_since_the_run_started(
    tmp_path, monkeypatch, cli_error, no_figures
):
    """The finished stages were trained on the old content of a point file: resuming on a changed
    (or another, same-named) file silently mixed the two in one results.json."""
    points = tmp_path / "points.csv"
    rows = np.random.default_rng(0).normal(size=(200, 2))
    points.write_text("".join(f"{a},{b}\n" for a, b in rows))
    out = tmp_path / "q"
    trained: list[str] = []
    real_train = pair_units.PairContext.train

    def train_then_interrupt(self, *args):
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append(args[-1])
        return real_train(self, *args)

    monkeypatch.setattr(pair_units.PairContext, "train", train_then_interrupt)
    with pytest.raises(run_module.ExperimentInterrupted):
        run_module.run_experiment(tiny(pairs=[("8gaussians", str(points))]), out, command="x")
    monkeypatch.setattr(pair_units.PairContext, "train", real_train)
    points.write_text("".join(f"{a},{b}\n" for a, b in 3.0 * rows))  # edited meanwhile
    line = cli_error(["experiment", "--resume", str(out), "--quiet"])
    assert "points.csv" in line and "changed" in line and "--overwrite" in line
    assert Staging.find(out) is not None  # the finished stages are kept
    points.write_text("".join(f"{a},{b}\n" for a, b in rows))  # restored: the run goes on
    assert main(["experiment", "--resume", str(out), "--quiet"]) == 0


def test_a_lost_worker_names_the_folder_to_resume(tmp_path, monkeypatch, capsys):
    """The hint said `--resume DIR` literally."""
    from bezkit.cli import experiment as cli_experiment
    from bezkit.executor import WorkerLost

    def lost(*args, **kwargs):
        raise WorkerLost("pair 1 of 1: the worker running it died, 3 time(s) of 3 allowed")

    monkeypatch.setattr(cli_experiment, "run_experiment", lost)
    out = tmp_path / "q"
    assert main(["experiment", *TINY_CLI, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"continue with `bezkit experiment --resume {out}`" in err and "Traceback" not in err


def _worker_signal_state() -> tuple[bool | None, bool, bool]:
    from bezkit import executor

    blocked_now = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    return executor._started_with_sigint_blocked, blocked_now, ignored


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_local_workers_cannot_be_interrupted_while_they_start():
    """Ctrl-C reaches the whole process group: a worker still starting up (before its
    initializer ignores SIGINT) printed a KeyboardInterrupt traceback into the terminal. It now
    starts with SIGINT blocked, then ignores and unblocks it; the parent's mask is as before."""
    from bezkit.executor import local_executor

    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with local_executor(1) as pool:
        started_blocked, blocked_now, ignored = pool.submit(_worker_signal_state).result()
    assert started_blocked is True
    assert ignored and not blocked_now
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


def test_resume_into_a_read_only_staging_folder_is_refused_before_any_training(
    tmp_path, monkeypatch, cli_error, no_figures
):
    """It trained a stage, then failed to keep it (exit 1) and advised `--resume` again."""
    out = tmp_path / "q"
    real_train = pair_units.PairContext.train
    trained: list[str] = []

    def train_then_interrupt(self, *args):
        if len(trained) == 1:
            raise KeyboardInterrupt
        trained.append(args[-1])
        return real_train(self, *args)

    monkeypatch.setattr(pair_units.PairContext, "train", train_then_interrupt)
    with pytest.raises(run_module.ExperimentInterrupted):
        run_module.run_experiment(tiny(), out, command="x")
    root = str(staging_dir(out))
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # the staging folder's file system is read-only
        if str(path).startswith(root) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(pair_units.PairContext, "train", _must_not_train)
    line = cli_error(["experiment", "--resume", str(out), "--quiet"])
    assert "--resume" in line and "Read-only file system" in line and root in line


def _must_not_train(*args, **kwargs):
    raise AssertionError("trained before checking that its work can be kept")
