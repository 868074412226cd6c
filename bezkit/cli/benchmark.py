"""``bezkit benchmark torchcfm-2d``: other people's protocols, run as published (or as near as this
machine allows), with their results table."""

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
from bezkit.cli.common import COMMAND_HELP, CLIError, positive_int
from bezkit.cli.outputs import claim_output_dir, write_json_atomic
from bezkit.files.atomic import atomic_write
from bezkit.protocols.torchcfm2d import (
    METHODS,
    PUBLISHED_SEEDS,
    PUBLISHED_STEPS,
    TASKS,
    BenchmarkSettings,
    RunResult,
    run_one,
    settings_dict,
    summarise,
    table_markdown,
)

__all__ = ["PROTOCOLS", "add_parser", "run", "run_protocol"]

PROTOCOLS: tuple[str, ...] = ("torchcfm-2d",)

DESCRIPTION = f"""\
Run a published protocol with bezkit's parts and write its results table.

torchcfm-2d: the 2D benchmark of torchcfm (Tong et al., TMLR 2024, Table 2). I-CFM and OT-CFM
(sigma = 0.1) on N->8gaussians, moons->8gaussians, N->moons and N->scurve, each over the seeds
{", ".join(map(str, PUBLISHED_SEEDS))}; the torchcfm network (3 x 64, SELU, raw t), AdamW lr 1e-3
constant, weight decay 1e-5, no clipping, batch 512, the weights of lowest validation loss (every
--val-every steps); scored on 1000 test points: W2 of 100 Euler steps and the normalised path
energy NPE = |PE - W2^2(x0, x1)| / W2^2(x0, x1). The published run is {PUBLISHED_STEPS} steps;
--steps sets it (exact OT at batch 512 costs tens of ms a step on a CPU). METHODS.md section 10
lists every definition, its source, and every difference from the published protocol.

Writes OUT/results.json (settings, every run, mean and std per task and method, the command,
wall time, load average, machine) and OUT/table.md. The same options give the same numbers
whatever --jobs (each run is seeded on its own).

examples:
  bezkit benchmark torchcfm-2d --steps 2000 --jobs 2 --out tcfm
  bezkit benchmark torchcfm-2d --tasks N->moons --methods OT-CFM --seeds 42 --out one
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit benchmark`` and its options to ``subparsers``."""
    p = subparsers.add_parser("benchmark", help=COMMAND_HELP["benchmark"], description=DESCRIPTION)
    p.add_argument("protocol", choices=PROTOCOLS, help="the protocol to run")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for results.json, table.md")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --out"
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=PUBLISHED_STEPS,
        metavar="N",
        help="training steps per run (the published protocol: 1000 epochs of 20 batches)",
    )
    p.add_argument(
        "--val-every",
        type=positive_int,
        default=200,
        metavar="N",
        help="validation every N steps (published: every 10 epochs = 200 steps)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(PUBLISHED_SEEDS),
        metavar="SEED",
        help="seeds of the runs (data, initial weights, batches); the published ones by default",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        choices=tuple(TASKS),
        default=list(TASKS),
        help="the tasks (rows of the table) to run",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="I-CFM (independent pairs) and / or OT-CFM (pairs by exact OT within each batch)",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="runs in parallel, in N local processes of one torch thread each",
    )
    p.set_defaults(func=run)
    return p


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


def _check_lists(args: argparse.Namespace) -> None:
    for name in ("seeds", "tasks", "methods"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            raise CLIError(f"--{name} lists a value twice: {values}")
    if any(s < 0 for s in args.seeds):
        raise CLIError(f"--seeds must be >= 0, got {args.seeds}")


def run(args: argparse.Namespace) -> int:
    """``bezkit benchmark``: run the protocol, write results.json and table.md into --out."""
    _check_lists(args)
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
