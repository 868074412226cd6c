"""``bezkit benchmark torchcfm-2d``: other people's protocols, run as published (or as near as this
machine allows), with their results table. The options are in :mod:`bezkit.cli.benchmark_options`
(torch-free: ``--help`` and usage errors start fast)."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bezkit import __version__
from bezkit.cli.benchmark_options import PROTOCOLS, add_parser
from bezkit.cli.common import CLIError
from bezkit.cli.outputs import claim_output_dir, write_json_atomic
from bezkit.files.atomic import atomic_write
from bezkit.protocols.torchcfm2d import (
    BenchmarkSettings,
    RunResult,
    run_one,
    settings_dict,
    summarise,
    table_markdown,
)

__all__ = ["PROTOCOLS", "add_parser", "run", "run_protocol"]


def _one(task: str, method: str, seed: int, settings: BenchmarkSettings) -> RunResult:
    """One run in a worker process: one torch thread (the runs are small)."""
    torch.set_num_threads(1)
    return run_one(task, method, seed, settings)


def run_protocol(
    settings: BenchmarkSettings,
    *,
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    jobs: int = 1,
) -> list[RunResult]:
    """Every (task, method, seed), in ``jobs`` processes (1: in this one), sorted in that order."""
    todo = [(t, m, s) for t in tasks for m in methods for s in seeds]
    if jobs == 1:
        return [_one(t, m, s, settings) for t, m, s in todo]
    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = [pool.submit(_one, t, m, s, settings) for t, m, s in todo]
        return [f.result() for f in futures]


def _write_text(path: str, text: str) -> None:
    Path(path).write_text(text)


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "bezkit": __version__,
    }


def run(args: argparse.Namespace) -> int:
    """``bezkit benchmark``: run the protocol, write results.json and table.md into --out (the
    lists of runs checked first by :func:`bezkit.cli.benchmark_options.check_lists`)."""
    out = Path(args.out)
    _lock = claim_output_dir(out, what="benchmark")
    results_path = out / "results.json"
    if results_path.exists() and not args.overwrite:
        raise CLIError(f"{results_path} already exists; pass --overwrite to replace it")
    settings = BenchmarkSettings(steps=args.steps, val_every=args.val_every)
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    results = run_protocol(
        settings, tasks=args.tasks, methods=args.methods, seeds=args.seeds, jobs=args.jobs
    )
    wall = time.perf_counter() - t0
    summary = summarise(results)
    report = {
        "protocol": args.protocol,
        "command": "bezkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_seconds": wall,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "jobs": args.jobs,
        "machine": _machine(),
        "settings": settings_dict(settings),
        "seeds": args.seeds,
        "summary": summary,
        "runs": [r.__dict__ for r in results],
    }
    table = table_markdown(summary)
    atomic_write(out / "table.md", lambda tmp: _write_text(tmp, table))
    write_json_atomic(results_path, report)
    print(table, end="")
    print(f"{len(results)} runs in {wall:.0f} s; wrote {results_path} and {out / 'table.md'}")
    return 0
