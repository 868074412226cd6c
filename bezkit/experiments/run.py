"""``run_experiment``: run, then write ``results.json``, ``report.md``, the chains' trajectories
(``chain-trajectories.npz``) and the PNG figures, swapped in as a whole; ``resume_experiment``:
continue an interrupted run from the pairs and stages it finished; ``rewrite_report``: redraw
the report and every figure of a finished run from those files, without re-running."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bezkit.executor import Task, executor_factory, run_tasks
from bezkit.experiments.claims import with_claims
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.figures import write_figures
from bezkit.experiments.report import markdown_report
from bezkit.experiments.results import SCHEMA_VERSION, load_results, save_results
from bezkit.experiments.stage_store import StageStore
from bezkit.experiments.staging import Staging, stage_folder, staging_dir
from bezkit.experiments.toy2d import count_trainings, run_experiment_pairs, run_pair
from bezkit.experiments.trajectories import (
    TRAJECTORIES_FILE,
    ChainPaths,
    load_trajectories,
    save_trajectories,
    trajectories_run_id,
)
from bezkit.files.atomic import atomic_write_bytes
from bezkit.files.run_dir import RunLock

__all__ = [
    "ExperimentInterrupted",
    "lesson_config",
    "lesson_results",
    "machine_info",
    "quick_results",
    "resume_experiment",
    "rewrite_report",
    "run_experiment",
    "run_id_of_report",
]

_REPORT_RUN_ID = re.compile(r"<!-- bezkit run id: ([0-9A-Za-z_-]+) -->")


def machine_info() -> dict[str, Any]:
    """The machine a run was made on, for its record: CPU model, usable cores, torch version and
    threads, Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


class ExperimentInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the finished units are kept in the run's staging folder and
    ``bezkit experiment --resume OUT`` (:func:`resume_experiment`) continues from them."""

    def __init__(self, out: Path, finished: int, total: int, stages: int = 0) -> None:
        more = f" (and {stages} finished stage(s) of the others)" if stages else ""
        super().__init__(
            f"interrupted: {finished} of {total} (source, target) pairs are finished{more} and "
            f"kept in {staging_dir(out)}; continue with `bezkit experiment --resume {out}`"
        )
        self.out, self.finished, self.total = out, finished, total


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    command: str | None = None,
    overwrite: bool = False,
    threads: int | None = 1,
    jobs: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Run the configured experiment and write ``results.json``, ``report.md``, the chains'
    trajectories (:data:`~bezkit.experiments.trajectories.TRAJECTORIES_FILE`) and the figures
    into ``out_dir``, as a whole.

    ``threads`` sets ``torch.set_num_threads`` for the run (default 1: small MLPs gain nothing
    from more, and on a shared 2-core machine more threads make every step much slower).
    ``jobs`` > 1 runs that many local worker processes at once (each with ``threads`` torch
    threads): several pairs one pair per worker, a single pair (or the last one left) its units
    (:func:`~bezkit.experiments.toy2d.pair_waves`); ``scheduler`` (a Dask scheduler address) runs
    the pairs on that cluster (:mod:`bezkit.executor`). Every unit is seeded on its own, so the
    numbers are those of one process running them in turn.

    The run works in a staging folder beside ``out_dir`` (:mod:`bezkit.experiments.staging`):
    each finished pair, and each finished stage of an unfinished pair, is kept there durably, and
    the finished run is swapped in for ``out_dir`` as a whole; every file carries the run's id
    (``run_id``). An existing run in ``out_dir``, or an interrupted one in its staging folder, is
    an error unless ``overwrite``; an interrupted run is continued by :func:`resume_experiment`.
    Ctrl-C raises :class:`ExperimentInterrupted`.
    """
    cfg.validate()
    _check_jobs(jobs)
    out = Path(out_dir)
    with _locked(out):
        staging = Staging.find(out)
        if staging is not None:
            if not overwrite:
                done, stages = len(staging.finished()), staging.finished_stages()
                more = f" and {stages} finished stage(s) of the others" if stages else ""
                raise FileExistsError(
                    f"{out}: an interrupted run left {done} finished pair(s){more} in "
                    f"{staging.root}; "
                    f"continue it with `bezkit experiment --resume {out}`, or --overwrite to "
                    "discard it"
                )
            staging.remove()
        if (out / "results.json").exists() and not overwrite:
            raise FileExistsError(
                f"{out / 'results.json'} exists; choose another folder or --overwrite"
            )
        command = command or " ".join(["bezkit", *sys.argv[1:]])
        staging = Staging.create(out, cfg, command=command, n_units=len(cfg.pairs))
        try:
            return _run_staged(cfg, staging, threads=threads, jobs=jobs, scheduler=scheduler)
        except ConnectionError:
            if not staging.finished():  # nothing ran: nothing to resume
                staging.remove()
            raise


def resume_experiment(
    out_dir: str | Path,
    *,
    threads: int | None = 1,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Continue the interrupted run into ``out_dir`` from the pairs and stages it finished (none
    is run again; any ``jobs``), with its stored configuration and command (``progress`` may
    switch the progress bar); the result is the one an uninterrupted run gives (its timings
    aside). ``FileNotFoundError`` when there is nothing to resume."""
    _check_jobs(jobs)
    out = Path(out_dir)
    with _locked(out):
        staging = Staging.find(out)
        if staging is None:
            finished = (out / "results.json").is_file()
            raise FileNotFoundError(
                f"{out} has no interrupted run to resume"
                + (" (it holds a finished run)" if finished else "")
            )
        cfg = staging.config()
        cfg.validate()
        staging.check_data(cfg)
        if progress is not None:
            cfg = dataclasses.replace(cfg, progress=progress)
        return _run_staged(cfg, staging, threads=threads, jobs=jobs, scheduler=scheduler)


def _check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the lock of folder ``out`` for the block, unless this process holds it already (the
    command line claims it before any work)."""
    if RunLock.held_over(out / "results.json") is not None:
        yield
        return
    with RunLock(out, folder=True, what="experiment"):
        yield


def _run_staged(
    cfg: ExperimentConfig,
    staging: Staging,
    *,
    threads: int | None,
    jobs: int,
    scheduler: str | None,
) -> dict[str, Any]:
    """Run the units ``staging`` lacks, keep each as it finishes, assemble and publish; Ctrl-C
    at any moment (also while the finished run is assembled) is :class:`ExperimentInterrupted`."""
    try:
        return _run_units_and_publish(cfg, staging, threads=threads, jobs=jobs, scheduler=scheduler)
    except KeyboardInterrupt as err:
        if isinstance(err, ExperimentInterrupted):
            raise
        n = len(cfg.pairs)
        raise ExperimentInterrupted(
            staging.out, len(staging.finished()), n, staging.finished_stages()
        ) from None


def _run_units_and_publish(
    cfg: ExperimentConfig,
    staging: Staging,
    *,
    threads: int | None,
    jobs: int,
    scheduler: str | None,
) -> dict[str, Any]:
    """:func:`_run_staged` without its interrupt handling."""
    n = len(cfg.pairs)
    experiments: list[dict[str, Any] | None] = [None] * n
    paths: list[ChainPaths] = [{} for _ in range(n)]
    earlier = 0.0
    for i in range(n):
        unit = staging.load_unit(i)
        if unit is not None:
            experiments[i], paths[i] = unit
            earlier += float(unit[0].get("wall_seconds", 0.0))
    todo = [i for i in range(n) if experiments[i] is None]

    def keep(j: int, result: dict[str, Any]) -> None:
        i = todo[j]
        paths[i] = result.pop("paths")
        experiments[i] = staging.save_unit(i, result, paths[i])

    previous = torch.get_num_threads()
    used = threads or previous
    t0 = time.perf_counter()
    bar = None
    try:
        # a cluster, or several pairs and workers: each pair in a worker (or on the cluster);
        # else the pairs here, one after another, each pair's units in `jobs` local workers
        by_pair = scheduler is not None or (len(todo) > 1 and jobs > 1)
        with executor_factory(jobs if by_pair else 1, scheduler if by_pair else None) as new:
            if new is None:  # here, under one progress bar
                torch.set_num_threads(used)
                bar = tqdm(total=count_trainings(cfg) * len(todo), disable=not cfg.progress)
                tasks = [
                    Task(_name(cfg, i), _pair_here, (cfg, i, bar, staging, jobs)) for i in todo
                ]
            else:
                tasks = [
                    Task(
                        _name(cfg, i), _pair_task, (cfg, i, used, str(staging.root), staging.run_id)
                    )
                    for i in todo
                ]
            run_tasks(tasks, keep, new)
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(previous)
    wall = earlier + time.perf_counter() - t0
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": staging.record["command"],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine_info(), "threads": used},
        "config": staging.record["config"],
        "wall_seconds": wall,
        "run_id": staging.run_id,
        "experiments": experiments,
    }
    with_claims(results)  # each claim's intervals, raw and Holm p-values and answer, kept
    folder = staging.fresh_assembly()
    save_trajectories(folder / TRAJECTORIES_FILE, paths, run_id=staging.run_id)
    figures = _draw(results, paths, folder)
    save_results(folder / "results.json", results)  # last: the assembled run is complete
    staging.publish().release()
    results["figures"] = figures
    return results


def _name(cfg: ExperimentConfig, i: int) -> str:
    src, tgt = cfg.pairs[i]
    return f"pair {i + 1} of {len(cfg.pairs)} ({src} -> {tgt})"


def _pair_here(
    cfg: ExperimentConfig, index: int, bar: tqdm, staging: Staging, jobs: int
) -> dict[str, Any]:
    """One (source, target) of ``cfg`` in this process, its units in ``jobs`` workers."""
    src, tgt = cfg.pairs[index]
    return run_pair(src, tgt, cfg, bar, store=staging.stage_store(index), jobs=jobs)


def _pair_task(
    cfg: ExperimentConfig, index: int, threads: int, root: str, run_id: str
) -> dict[str, Any]:
    """One (source, target) of ``cfg`` in a worker (its own progress bar, ``threads`` torch
    threads; the worker's setting is restored: a Dask worker may be a thread of a process). Its
    units are kept in the run's staging folder at ``root`` when the worker can reach it (a Dask
    worker on another machine keeps them in memory: the pair is then the unit of resumption)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        src, tgt = cfg.pairs[index]
        folder = Path(root)
        store = (
            StageStore(stage_folder(folder, index), run_id)
            if (folder / "run.json").is_file()
            else None
        )
        return run_pair(src, tgt, cfg, store=store)
    finally:
        torch.set_num_threads(previous)


def _draw(results: Mapping[str, Any], paths: Sequence[ChainPaths], out: Path) -> list[str]:
    """Draw every figure and the report into a temporary folder inside ``out``, then move each
    file into place (``os.replace``: every file is the old one or the new one, never a part; a
    failure while drawing leaves every old file as it was). Returns the figure names."""
    with tempfile.TemporaryDirectory(dir=out, prefix=".bezkit-draw-") as tmp:
        figures = write_figures(results, list(paths), tmp)
        report = _with_run_id(markdown_report(dict(results), figures), _run_id(results))
        atomic_write_bytes(Path(tmp) / "report.md", report.encode())
        for name in [*figures, "report.md"]:
            os.replace(Path(tmp) / name, out / name)
    return figures


def _with_run_id(report: str, run_id: str | None) -> str:
    """The report with its run's id as a last, invisible line (an HTML comment)."""
    return (
        report
        if run_id is None
        else report.rstrip("\n") + f"\n\n<!-- bezkit run id: {run_id} -->\n"
    )


def _run_id(results: Mapping[str, Any]) -> str | None:
    rid = results.get("run_id")
    return rid if isinstance(rid, str) else None


def run_id_of_report(path: str | Path) -> str | None:
    """The run id a ``report.md`` was written with, ``None`` for a report without one."""
    match = _REPORT_RUN_ID.search(Path(path).read_text(errors="replace"))
    return None if match is None else match.group(1)


def _check_one_run(out: Path, results: Mapping[str, Any]) -> None:
    """Refuse a folder whose files come from different runs: the run id of ``results.json``, of
    the trajectories and of ``report.md`` (where present) must agree."""
    ids = {"results.json": _run_id(results)}
    if (out / TRAJECTORIES_FILE).is_file():
        ids[TRAJECTORIES_FILE] = trajectories_run_id(out / TRAJECTORIES_FILE)
    if (out / "report.md").is_file():
        ids["report.md"] = run_id_of_report(out / "report.md")
    if len(set(ids.values())) > 1:
        found = ", ".join(f"{name} of run {rid or '(no id)'}" for name, rid in ids.items())
        raise ValueError(
            f"the folder mixes files of different runs ({found}); nothing was rewritten: "
            "re-run the experiment into it with --overwrite"
        )


def rewrite_report(out_dir: str | Path) -> list[str]:
    """Redraw ``report.md`` and every figure of a finished run from the files in ``out_dir``
    (``results.json`` and, for the trajectory figures, ``chain-trajectories.npz``), without
    re-running; each file is replaced atomically. A folder without ``results.json`` is an error.
    A run saved before the trajectories were kept has no ``.npz``: its trajectory figures are
    left as they are; one saved before its claims were kept in ``results.json`` gains them
    (:func:`~bezkit.experiments.claims.with_claims`; ``results.json`` rewritten atomically, every
    number as it was). Returns the names of the figures the report shows."""
    out = Path(out_dir)
    if not (out / "results.json").is_file():
        raise FileNotFoundError(
            f"{out} has no results.json: not the folder of a finished `bezkit experiment` run"
        )
    results = load_results(out / "results.json")
    _check_one_run(out, results)
    if with_claims(results):  # a run saved before its claims were kept gains them
        save_results(out / "results.json", results)
    n = len(results["experiments"])
    store = out / TRAJECTORIES_FILE
    paths: list[ChainPaths] = [{} for _ in range(n)]
    if store.is_file():
        paths = list(load_trajectories(store, n))
    figures = _draw(results, paths, out)
    if not store.is_file():
        kept = sorted(p.name for p in out.glob("*-chain-trajectories.png"))
        figures += kept
        report = markdown_report(dict(results), figures)
        atomic_write_bytes(out / "report.md", _with_run_id(report, _run_id(results)).encode())
    return figures


def lesson_config(**overrides: Any) -> ExperimentConfig:
    """A small :class:`ExperimentConfig` (8gaussians -> moons, 2 seeds, K = 2, a few students) that
    runs in well under a minute on one CPU thread: lesson 05's fallback when no results file is
    committed."""
    base: dict[str, Any] = dict(
        hidden=64,
        batch_size=128,
        flow_steps=300,
        round_steps=100,
        student_steps=60,
        n_pairs=512,
        teacher_steps=16,
        n_eval=512,
        many_steps=16,
        eval_steps=(1, 2, 4),
        methods=(
            "rf-distill",
            "anchored-distill",
            "rf-distill-2",
            "anchored-distill-2",
            "bezier-quadratic-2-endpoint",
        ),
        baselines=(),
        budget_factors=(1,),  # one student budget: the lesson's fallback stays well under a minute
        progress=False,
    )
    base.update(overrides)
    return ExperimentConfig.quick(**base)


def quick_results(cfg: ExperimentConfig | None = None) -> dict[str, Any]:
    """Run ``cfg`` (default :func:`lesson_config`) on one torch thread and return a dict of the
    ``results.json`` schema (no files written, no figures)."""
    cfg = lesson_config() if cfg is None else cfg
    cfg.validate()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        exps = run_experiment_pairs(cfg)
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)
    for exp in exps:
        exp.pop("paths", None)
    results = {
        "schema_version": SCHEMA_VERSION,
        "command": "bezkit.experiments.quick_results()",
        "date": None,
        "machine": {**machine_info(), "threads": 1},
        "config": cfg.to_dict(),
        "wall_seconds": wall,
        "experiments": exps,
    }
    with_claims(results)
    return results


def lesson_results(
    path: str | Path, *, config: ExperimentConfig | None = None, verbose: bool = True
) -> dict[str, Any]:
    """``results.json`` at ``path`` when it exists, else :func:`quick_results` of ``config``."""
    path = Path(path)
    if path.exists():
        results = load_results(path)
        if verbose:
            print(f"loaded {path.name}: {results.get('command', '?')}")
        return dict(results)
    if verbose:
        print(f"{path.name} not found: running a small experiment instead")
    ran = quick_results(config)
    if verbose:
        print(f"ran {ran['command']} in {ran['wall_seconds']:.0f} s")
    return ran
