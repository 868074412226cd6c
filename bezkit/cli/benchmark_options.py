"""The options of ``bezkit benchmark``, without torch: the parser is built (``--help``, usage
errors) before torch is imported; the command runs :func:`bezkit.cli.benchmark.run`.

:data:`PUBLISHED_SEEDS`, :data:`PUBLISHED_STEPS`, :data:`METHODS` and :data:`TASK_NAMES` repeat
those of :mod:`bezkit.protocols.torchcfm2d` (importing it imports torch; a test keeps them
equal)."""

from __future__ import annotations

import argparse

from bezkit.cli.common import COMMAND_HELP, CLIError, positive_int

__all__ = [
    "DESCRIPTION",
    "METHODS",
    "PROTOCOLS",
    "PUBLISHED_SEEDS",
    "PUBLISHED_STEPS",
    "TASK_NAMES",
    "add_parser",
    "check_lists",
]

PROTOCOLS: tuple[str, ...] = ("torchcfm-2d",)
PUBLISHED_SEEDS: tuple[int, ...] = (42, 43, 44, 45, 46)
PUBLISHED_STEPS = 20_000
METHODS: tuple[str, ...] = ("I-CFM", "OT-CFM")
#: The keys of :data:`bezkit.protocols.torchcfm2d.TASKS`, in order.
TASK_NAMES: tuple[str, ...] = ("N->8gaussians", "moons->8gaussians", "N->moons", "N->scurve")

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
    """Add ``bezkit benchmark`` and its options to ``subparsers`` without importing torch; the
    command runs :func:`bezkit.cli.benchmark.run` (``func="benchmark"``)."""
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
        choices=TASK_NAMES,
        default=list(TASK_NAMES),
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
    p.set_defaults(func="benchmark", check_args=check_lists)
    return p


def check_lists(args: argparse.Namespace) -> None:
    """No seed, task or method twice and no negative seed (``check_args``: before torch)."""
    for name in ("seeds", "tasks", "methods"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            raise CLIError(f"--{name} lists a value twice: {values}")
    if any(s < 0 for s in args.seeds):
        raise CLIError(f"--seeds must be >= 0, got {args.seeds}")
