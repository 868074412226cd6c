"""``run_experiment``: run, then write ``results.json``, ``report.md``, the chains' trajectories
(``chain-trajectories.npz``) and the PNG figures; ``rewrite_report``: redraw the report and every
figure of a finished run from those files, without re-running."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.figures import write_figures
from bezkit.experiments.report import markdown_report
from bezkit.experiments.results import SCHEMA_VERSION, load_results, save_results
from bezkit.experiments.toy2d import run_experiment_pairs, run_pair
from bezkit.experiments.trajectories import (
    TRAJECTORIES_FILE,
    ChainPaths,
    load_trajectories,
    save_trajectories,
)
from bezkit.files.atomic import atomic_write_bytes

__all__ = [
    "lesson_config",
    "lesson_results",
    "machine_info",
    "quick_results",
    "rewrite_report",
    "run_experiment",
]


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


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    command: str | None = None,
    overwrite: bool = False,
    threads: int | None = 1,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run the configured experiment and write ``results.json``, ``report.md``, the chains'
    trajectories (:data:`~bezkit.experiments.trajectories.TRAJECTORIES_FILE`) and the figures
    into ``out_dir``.

    ``threads`` sets ``torch.set_num_threads`` for the run (default 1: small MLPs gain nothing
    from more, and on a shared 2-core machine more threads make every step much slower).
    ``jobs`` > 1 runs the (source, target) pairs in that many processes at once (each with
    ``threads`` torch threads): every pair is seeded on its own, so the numbers are those of one
    process running them in turn.
    An existing ``results.json`` in ``out_dir`` is an error unless ``overwrite``; the files are
    written atomically, only after the whole run succeeded.
    """
    cfg.validate()
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = Path(out_dir)
    if (out / "results.json").exists() and not overwrite:
        raise FileExistsError(f"{out / 'results.json'} exists; choose another folder or overwrite")
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        if jobs == 1 or len(cfg.pairs) == 1:
            experiments = run_experiment_pairs(cfg)
        else:
            experiments = _pairs_in_processes(cfg, jobs, threads or previous)
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": command or " ".join(["bezkit", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine_info(), "threads": threads or previous},
        "config": cfg.to_dict(),
        "wall_seconds": wall,
        "experiments": experiments,
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = [exp.pop("paths") for exp in experiments]
    save_results(out / "results.json", results)
    save_trajectories(out / TRAJECTORIES_FILE, paths)
    results["figures"] = _draw(results, paths, out)
    return results


def _one_pair(cfg: ExperimentConfig, index: int, threads: int) -> dict[str, Any]:
    """One (source, target) of ``cfg`` in a worker process (its own progress bar)."""
    torch.set_num_threads(threads)
    src, tgt = cfg.pairs[index]
    return run_pair(src, tgt, cfg)


def _pairs_in_processes(cfg: ExperimentConfig, jobs: int, threads: int) -> list[dict[str, Any]]:
    """:func:`run_pair` of every pair, ``jobs`` at a time in fresh (spawned) processes, in the
    order of ``cfg.pairs``."""
    ctx = get_context("spawn")  # no fork of a process whose torch thread pools already run
    with ProcessPoolExecutor(max_workers=min(jobs, len(cfg.pairs)), mp_context=ctx) as pool:
        futures = [pool.submit(_one_pair, cfg, i, threads) for i in range(len(cfg.pairs))]
        return [f.result() for f in futures]


def _draw(results: Mapping[str, Any], paths: Sequence[ChainPaths], out: Path) -> list[str]:
    """Draw every figure and the report into a temporary folder inside ``out``, then move each
    file into place (``os.replace``: every file is the old one or the new one, never a part; a
    failure while drawing leaves every old file as it was). Returns the figure names."""
    with tempfile.TemporaryDirectory(dir=out, prefix=".bezkit-draw-") as tmp:
        figures = write_figures(results, list(paths), tmp)
        report = markdown_report(dict(results), figures)
        atomic_write_bytes(Path(tmp) / "report.md", report.encode())
        for name in [*figures, "report.md"]:
            os.replace(Path(tmp) / name, out / name)
    return figures


def rewrite_report(out_dir: str | Path) -> list[str]:
    """Redraw ``report.md`` and every figure of a finished run from the files in ``out_dir``
    (``results.json`` and, for the trajectory figures, ``chain-trajectories.npz``), without
    re-running; each file is replaced atomically. A folder without ``results.json`` is an error.
    A run saved before the trajectories were kept has no ``.npz``: its trajectory figures are
    left as they are. Returns the names of the figures the report shows."""
    out = Path(out_dir)
    if not (out / "results.json").is_file():
        raise FileNotFoundError(
            f"{out} has no results.json: not the folder of a finished `bezkit experiment` run"
        )
    results = load_results(out / "results.json")
    n = len(results["experiments"])
    store = out / TRAJECTORIES_FILE
    paths: list[ChainPaths] = [{} for _ in range(n)]
    if store.is_file():
        paths = list(load_trajectories(store, n))
    figures = _draw(results, paths, out)
    if not store.is_file():
        kept = sorted(p.name for p in out.glob("*-chain-trajectories.png"))
        figures += kept
        atomic_write_bytes(out / "report.md", markdown_report(dict(results), figures).encode())
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
    return {
        "schema_version": SCHEMA_VERSION,
        "command": "bezkit.experiments.quick_results()",
        "date": None,
        "machine": {**machine_info(), "threads": 1},
        "config": cfg.to_dict(),
        "wall_seconds": wall,
        "experiments": exps,
    }


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
