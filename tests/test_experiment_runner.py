"""The experiment's orchestration: a run swapped in as a whole, run ids, resume after a kill or
Ctrl-C, local workers that die with their parent, a worker that dies mid-task, Dask.

The runs are tiny (one round, one student, 64 points) and draw stub figures (the figures are
tested in test_experiment.py; here only which run's files a folder holds matters).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bezkit.cli import main
from bezkit.executor import (
    KeptExecutor,
    Task,
    WorkerLost,
    executor_factory,
    local_executor,
    run_tasks,
)
from bezkit.experiments import run as run_module
from bezkit.experiments import staging as staging_module
from bezkit.experiments.run import (
    ExperimentInterrupted,
    rewrite_report,
    run_experiment,
    run_id_of_report,
)
from bezkit.experiments.staging import Staging, staging_dir
from bezkit.experiments.trajectories import TRAJECTORIES_FILE, trajectories_run_id
from bezkit.files import swap

REPO = Path(__file__).resolve().parents[1]

# the configuration of every run here, also built in the subprocesses (same text)
CONFIG = textwrap.dedent(
    """
    from bezkit.experiments import ExperimentConfig
    from bezkit.experiments import run as run_module

    def tiny_config():
        return ExperimentConfig.quick(
            pairs=[("8gaussians", "moons"), ("gaussian", "moons")],
            seeds=2, rounds=1, student_rounds=1, methods=("rf-distill",), baselines=(),
            chains=("reflow",), hidden=16, flow_steps=20, student_steps=10, n_pairs=64,
            teacher_steps=4, n_eval=64, eval_draws=1, many_steps=4, n_projections=16,
            progress=False,
        )

    def stub_figures(results, paths, out_dir):
        names = []
        for i, exp in enumerate(results["experiments"]):
            name = f"{exp['source']}-to-{exp['target']}-stub.png"
            with open(f"{out_dir}/{name}", "wb") as fh:
                fh.write(b"figure of experiment %d" % i)
            names.append(name)
        return names
    """
)
# a subprocess draws with the stub too; in this process the autouse fixture patches it per test
# (a module-level patch here would leak into every test collected after this file)
SUBPROCESS_CONFIG = CONFIG + "\nrun_module.write_figures = stub_figures\n"
_ns: dict = {}
exec(CONFIG, _ns)
tiny_config = _ns["tiny_config"]
stub_figures = _ns["stub_figures"]


@pytest.fixture(autouse=True)
def _stub_figures(monkeypatch):
    monkeypatch.setattr(run_module, "write_figures", stub_figures)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name[0] != "."}


def _without_run_facts(obj):
    """results.json without what differs between two runs of one configuration: timings, date,
    command, run id."""
    drop = ("wall_seconds", "date", "command", "run_id")
    if isinstance(obj, dict):
        return {k: _without_run_facts(v) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [_without_run_facts(v) for v in obj]
    return obj


def _results(folder: Path):
    return _without_run_facts(json.loads((folder / "results.json").read_text()))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted --jobs 1 run of the tiny configuration (stub figures)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(run_module, "write_figures", stub_figures)
    try:
        run_experiment(tiny_config(), out, command="reference")
    finally:
        mp.undo()
    return out


# -- one run, one id, one swap ---------------------------------------------------------------------


def test_every_file_of_a_run_carries_its_run_id(reference):
    rid = json.loads((reference / "results.json").read_text())["run_id"]
    assert trajectories_run_id(reference / TRAJECTORIES_FILE) == rid
    assert run_id_of_report(reference / "report.md") == rid
    assert not staging_dir(reference).exists()  # the staging folder is gone once published


def test_overwrite_replaces_the_run_as_a_whole_and_keeps_other_files(reference, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name, data in _files(reference).items():
        (out / name).write_bytes(data)
    (out / "old-pair-to-x-stub.png").write_bytes(b"a figure of a pair the new run lacks")
    (out / "notes.txt").write_text("mine")
    old_id = json.loads((out / "results.json").read_text())["run_id"]
    cfg = tiny_config()
    cfg.pairs = cfg.pairs[:1]
    new = run_experiment(cfg, out, command="new", overwrite=True)
    assert new["run_id"] != old_id
    assert trajectories_run_id(out / TRAJECTORIES_FILE) == new["run_id"]
    assert run_id_of_report(out / "report.md") == new["run_id"]
    assert (out / "notes.txt").read_text() == "mine"  # not the run's: kept
    assert not (out / "old-pair-to-x-stub.png").exists()  # the previous run's figure went with it
    assert not (out / "gaussian-to-moons-stub.png").exists()
    assert not staging_dir(out).exists()


def test_a_failed_swap_leaves_the_previous_run_and_the_finished_work(
    reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    out.mkdir()
    for name, data in _files(reference).items():
        (out / name).write_bytes(data)
    before = _files(out)

    def full_disk(new, old):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(staging_module, "exchange_folders", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_experiment(tiny_config(), out, command="again", overwrite=True)
    assert _files(out) == before
    # the command line says so in one line, with the way on (the units are kept: no training)
    monkeypatch.setattr(run_module, "run_pair", _must_not_train)
    assert main(["experiment", "--resume", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device; the previous run" in err and "--resume" in err
    assert "Traceback" not in err
    assert _files(out) == before  # the previous run, every file of it
    assert len(Staging.find(out).finished()) == 2  # the new run's work is kept
    # a plain re-run is told about it; --resume publishes it without training again
    assert main(["experiment", "--quick", "--quiet", "--out", str(out)]) == 2
    assert "left 2 finished pair(s)" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(run_module, "write_figures", stub_figures)
    monkeypatch.setattr(run_module, "run_pair", _must_not_train)
    assert main(["experiment", "--resume", str(out), "--quiet"]) == 0
    assert _results(out) == _results(reference)
    assert json.loads((out / "results.json").read_text())["command"] == "again"


def _must_not_train(*args, **kwargs):
    raise AssertionError("a finished pair was trained again")


def test_redraw_refuses_a_folder_mixing_two_runs(reference, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, data in _files(reference).items():
        (folder / name).write_bytes(data)
    results = json.loads((folder / "results.json").read_text())
    results["run_id"] = "20990101T000000Z-000000000000"  # results.json of another run
    (folder / "results.json").write_text(json.dumps(results))
    before = _files(folder)
    assert main(["experiment", "--redraw", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "mixes files of different runs" in err and "chain-trajectories.npz of run" in err
    assert _files(folder) == before
    # a folder written before run ids (no id anywhere) is still redrawn
    del results["run_id"]
    (folder / "results.json").write_text(json.dumps(results))
    with np.load(folder / TRAJECTORIES_FILE) as data:
        arrays = {k: data[k] for k in data.files if k != "run_id"}
    np.savez(folder / TRAJECTORIES_FILE, **arrays)
    report = (folder / "report.md").read_text()
    (folder / "report.md").write_text(report[: report.index("<!-- bezkit run id")])
    assert rewrite_report(folder) == ["8gaussians-to-moons-stub.png", "gaussian-to-moons-stub.png"]
    assert run_id_of_report(folder / "report.md") is None


# -- the folder swap itself ------------------------------------------------------------------------


def _two_folders(tmp_path: Path) -> tuple[Path, Path]:
    new, old = tmp_path / "staging" / "run", tmp_path / "out"
    new.mkdir(parents=True)
    old.mkdir()
    (new / "results.json").write_text("new")
    (old / "results.json").write_text("old")
    return new, old


def test_exchange_folders_swaps_the_contents(tmp_path):
    new, old = _two_folders(tmp_path)
    swap.exchange_folders(new, old)
    assert (old / "results.json").read_text() == "new"
    assert (new / "results.json").read_text() == "old"


def test_the_rename_fallback_undoes_a_failed_second_rename(tmp_path, monkeypatch):
    new, old = _two_folders(tmp_path)
    monkeypatch.setattr(swap, "_renameat2_exchange", lambda a, b: False)
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(swap.os, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        swap.exchange_folders(new, old)
    assert (old / "results.json").read_text() == "old"
    assert (new / "results.json").read_text() == "new"
    assert len(calls) == 3  # the undo
    monkeypatch.setattr(swap.os, "rename", real)
    swap.exchange_folders(new, old)
    assert (old / "results.json").read_text() == "new"


def test_a_swap_killed_between_renames_is_undone_before_the_next_run(tmp_path):
    new, old = _two_folders(tmp_path)
    os.rename(old, new.with_name("run" + swap.SWAP_SUFFIX))  # killed after the first rename
    old.mkdir()  # the next command claims --out again (its lock file)
    (old / ".bezkit.lock").write_text("")
    assert swap.finish_interrupted_swap(new, old)
    assert (old / "results.json").read_text() == "old"
    assert not swap.finish_interrupted_swap(new, old)


# -- resume ----------------------------------------------------------------------------------------


def test_sigkill_after_the_first_pair_then_resume_gives_the_uninterrupted_results(
    reference, tmp_path
):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    script = SUBPROCESS_CONFIG + textwrap.dedent(
        f"""
        import os, signal
        from bezkit.experiments import staging, run_experiment
        save = staging.Staging.save_unit
        def save_then_die(self, *args, **kwargs):
            save(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        staging.Staging.save_unit = save_then_die
        run_experiment(tiny_config(), {str(out)!r}, command="killed")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=_env(), timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()
    assert Staging.find(out).finished() == [0]
    assert main(["experiment", "--resume", str(out), "--quiet", "--seeds", "3"]) == 2  # options
    assert main(["experiment", "--resume", str(out), "--quiet"]) == 0
    assert _results(out) == _results(reference)
    assert (out / "notes.txt").read_text() == "mine"
    assert not staging_dir(out).exists()
    assert main(["experiment", "--resume", str(out), "--quiet"]) == 2  # nothing left to resume


def test_ctrl_c_keeps_the_finished_pairs_and_says_how_to_resume(tmp_path, monkeypatch):
    real = run_module.run_pair
    calls = []

    def second_interrupted(*args, **kwargs):
        calls.append(args[:2])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "run_pair", second_interrupted)
    out = tmp_path / "run"
    with pytest.raises(ExperimentInterrupted, match=r"1 of 2 .* --resume") as info:
        run_experiment(tiny_config(), out, command="x")
    assert (info.value.finished, info.value.total) == (1, 2)
    assert Staging.find(out).finished() == [0]
    assert not (out / "results.json").exists()


def test_ctrl_c_on_the_command_line_exits_130_and_names_the_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "run_pair", interrupted)
    out = tmp_path / "run"
    assert main(["experiment", "--quick", "--quiet", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "0 of 1 (source, target) pairs" in err and "--resume" in err
    assert Staging.find(out) is not None and not (out / "results.json").exists()
    assert main(["experiment", "--resume", str(tmp_path / "none")]) == 2
    assert "no interrupted run to resume" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # nothing created


def test_sigterm_on_the_command_line_is_handled_as_ctrl_c(tmp_path, monkeypatch, capsys):
    """``timeout`` and batch schedulers send SIGTERM: the run keeps its work and says how to
    resume, as on Ctrl-C (it was killed outright)."""

    def terminated(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(run_module, "run_pair", terminated)
    out = tmp_path / "run"
    assert main(["experiment", "--quick", "--quiet", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "0 of 1 (source, target) pairs" in err and f"--resume {out}" in err
    assert Staging.find(out) is not None and not (out / "results.json").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored after the command


def test_overwrite_through_a_symbolic_link_replaces_the_folder_it_points_to(reference, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    for name, data in _files(reference).items():
        (real / name).write_bytes(data)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    cfg = tiny_config()
    cfg.pairs = cfg.pairs[:1]
    new = run_experiment(cfg, link, command="via link", overwrite=True)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert json.loads((real / "results.json").read_text())["run_id"] == new["run_id"]
    assert not staging_dir(link).exists() and not list(tmp_path.glob(".*staging*"))


# -- workers ---------------------------------------------------------------------------------------


# task functions for workers, in a module of their own: a spawned worker imports it (and the
# torch-free bezkit.executor) in a moment, not this test module with torch
_TASKS = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path

    def square(x):
        return x * x

    def die_once(marker, x):
        # kill the worker the first time (SIGKILL: no cleanup), succeed the second
        if not os.path.exists(marker):
            Path(marker).write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        return x * x

    def always_die():
        os.kill(os.getpid(), signal.SIGKILL)

    def pid():
        return os.getpid()
    """
)


def test_a_kept_executor_keeps_its_workers_across_calls_until_one_dies(tmp_path, monkeypatch):
    """A pair's waves share one pool: the workers start (and import torch) once per pair."""
    (tmp_path / "runner_tasks.py").write_text(_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import runner_tasks as t

    got: dict[int, int] = {}
    with KeptExecutor(lambda: local_executor(2)) as kept:
        run_tasks([Task(f"p{i}", t.pid) for i in range(6)], got.__setitem__, kept)
        first = set(got.values())
        got.clear()
        run_tasks([Task(f"q{i}", t.pid) for i in range(6)], got.__setitem__, kept)
        assert set(got.values()) <= first and len(first) <= 2  # the same processes
        marker = str(tmp_path / "died")
        run_tasks([Task("once", t.die_once, (marker, 3))], got.__setitem__, kept)
        assert got[0] == 9
        got.clear()
        run_tasks([Task(f"r{i}", t.pid) for i in range(6)], got.__setitem__, kept)
        assert not set(got.values()) & first  # a worker died: a new pool
        last = set(got.values())
    for pid in last:  # the block shut the pool down: its workers are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_task_whose_worker_dies_is_run_again_or_reported(tmp_path, monkeypatch):
    (tmp_path / "runner_tasks.py").write_text(_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import runner_tasks as t

    marker = str(tmp_path / "died")
    tasks = [
        Task("a", t.square, (3,)),
        Task("b", t.die_once, (marker, 4)),
        Task("c", t.square, (5,)),
    ]
    got: dict[int, int] = {}
    run_tasks(tasks, got.__setitem__, lambda: local_executor(2))
    assert got == {0: 9, 1: 16, 2: 25} and Path(marker).exists()
    got.clear()
    with pytest.raises(WorkerLost, match="dead: the worker running it died, 2 time"):
        run_tasks(
            [Task("dead", t.always_die)], got.__setitem__, lambda: local_executor(1), retries=1
        )
    assert got == {}


_WORKER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from bezkit.executor import Task, local_executor, run_tasks

    def sleep_and_tell(folder, i):
        Path(folder, f"worker-{i}").write_text(str(os.getpid()))
        time.sleep(120)

    if __name__ == "__main__":
        folder = sys.argv[1]
        tasks = [Task(str(i), sleep_and_tell, (folder, i)) for i in range(2)]
        try:
            run_tasks(tasks, lambda i, r: None, lambda: local_executor(2))
        except KeyboardInterrupt:
            Path(folder, "interrupted").write_text("")
            sys.exit(130)
    """
)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_local_workers_end_with_their_parent(tmp_path, sig):
    (tmp_path / "script.py").write_text(_WORKER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "script.py"), str(tmp_path)], env=_env(), cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("worker-*"))) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        workers = [int(p.read_text()) for p in tmp_path.glob("worker-*")]
        proc.send_signal(sig)
        start = time.monotonic()
        code = proc.wait(timeout=30)
        waited = time.monotonic() - start
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:
        assert code == 130 and (tmp_path / "interrupted").exists()
        assert waited < 10  # promptly, not after the workers' tasks
    else:
        assert code == -signal.SIGKILL


# -- Dask ------------------------------------------------------------------------------------------


def test_a_dask_cluster_gives_the_results_of_one_process(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
    ):
        out = tmp_path / "dask"
        run_experiment(tiny_config(), out, command="dask", scheduler=cluster.scheduler_address)
    assert _results(out) == _results(reference)
    assert (out / TRAJECTORIES_FILE).read_bytes() != b""
    with np.load(out / TRAJECTORIES_FILE) as a, np.load(reference / TRAJECTORIES_FILE) as b:
        assert set(a.files) == set(b.files)
        for key in a.files:
            if key != "run_id":
                assert np.array_equal(a[key], b[key]), key


def _alarm(signum, frame):
    raise TimeoutError("the Dask cluster did not finish in time (no worker came back?)")


def test_a_dask_task_whose_worker_dies_is_retried_or_reported(tmp_path, monkeypatch):
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    cloudpickle = pytest.importorskip("cloudpickle")
    (tmp_path / "runner_tasks.py").write_text(_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import runner_tasks as t

    cloudpickle.register_pickle_by_value(t)  # the worker processes need not import it
    marker = str(tmp_path / "died")
    got: dict[int, int] = {}
    # Dask reports the first death at once (KilledWorker): bezkit's own retry runs it again
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(240)  # a failure, not a hang, if the nanny never brings a worker back
    try:
        with (
            dask.config.set({"distributed.scheduler.allowed-failures": 0}),
            distributed.LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            executor_factory(1, cluster.scheduler_address) as new_executor,
        ):
            run_tasks([Task("once", t.die_once, (marker, 3))], got.__setitem__, new_executor)
            assert got == {0: 9} and Path(marker).exists()  # run again on the new worker
            with pytest.raises(WorkerLost, match=r"always: the worker running it died.*Killed"):
                run_tasks([Task("always", t.always_die)], got.__setitem__, new_executor, retries=0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_scheduler_that_cannot_be_reached_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "run"
    assert (
        main(["experiment", "--quick", "--quiet", "--scheduler", "no-port", "--out", str(out)]) == 2
    )
    assert "--scheduler: cannot reach the Dask scheduler 'no-port'" in capsys.readouterr().err
    assert not staging_dir(out).exists() and not (out / "results.json").exists()
