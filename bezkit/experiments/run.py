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
from bezkit.experiments.results import SCHEMA_VERSION, save_results
from bezkit.experiments.toy2d import run_experiment_pairs
from bezkit.training.atomic import atomic_write_bytes

__all__ = ["machine_info", "run_experiment"]


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
