"""``run_experiment``: run, then write ``results.json``, ``report.md`` and the PNG figures."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.figures import write_figures
from bezkit.experiments.report import markdown_report
from bezkit.experiments.results import SCHEMA_VERSION, load_results, save_results
from bezkit.experiments.toy2d import run_experiment_pairs
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
) -> dict[str, Any]:
    """Run the configured experiment and write ``results.json``, ``report.md`` and the figures
    into ``out_dir``.

    ``threads`` sets ``torch.set_num_threads`` for the run (default 1: small MLPs gain nothing
    from more, and on a shared 2-core machine more threads make every step much slower).
    An existing ``results.json`` in ``out_dir`` is an error unless ``overwrite``; the files are
    written atomically, only after the whole run succeeded.
    """
    cfg.validate()
    out = Path(out_dir)
    if (out / "results.json").exists() and not overwrite:
        raise FileExistsError(f"{out / 'results.json'} exists; choose another folder or overwrite")
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        experiments = run_experiment_pairs(cfg)
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
    figures = write_figures(results, paths, out)
    save_results(out / "results.json", results)
    atomic_write_bytes(out / "report.md", markdown_report(results, figures).encode())
    results["figures"] = figures
    return results


def rewrite_report(out_dir: str | Path) -> list[str]:
    """Redraw ``report.md`` and the figures of a finished run from its ``results.json`` (after a
    change to the report or the figures; nothing is retrained). The trajectory figures need the
    trajectories, which ``results.json`` does not hold: existing ones are kept. Returns the
    figure names."""
    out = Path(out_dir)
    results = load_results(out / "results.json")
    figures = write_figures(results, [{}] * len(results["experiments"]), out)
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
