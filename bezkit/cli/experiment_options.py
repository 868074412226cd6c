"""The options of ``bezkit experiment``, without torch: the parser is built (``--help``, usage
errors) before torch is imported; the command runs :func:`bezkit.cli.experiment.run`.

The names and defaults shown in the help repeat those of :mod:`bezkit.experiments` (importing it
imports torch): :data:`STUDENT_NAMES`, :data:`DEFAULT_STUDENTS`, :data:`BASELINE_METHODS`,
:data:`CHAIN_KINDS` and :data:`DEFAULTS` (a test keeps each equal)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bezkit.cli.common import (
    COMMAND_HELP,
    CLIError,
    jobs_count,
    nonnegative_float,
    positive_int,
    seed_int,
)
from bezkit.cli.datasets import dataset
from bezkit.executor import dask_available

__all__ = [
    "BASELINE_METHODS",
    "CHAIN_KINDS",
    "DEFAULTS",
    "DEFAULT_STUDENTS",
    "DESCRIPTION",
    "RUN_OPTIONS",
    "SCALAR_OPTIONS",
    "STUDENT_NAMES",
    "ConfigDefaults",
    "add_parser",
    "check_options",
    "fraction",
    "pair",
]

DESCRIPTION = """bezkit experiment: the 2D error-accumulation experiment (the README's main job).

For every (source, target) pair and training seed: three chains of K rounds in which each round's
teacher is the previous round's model (plain reflow, data-anchored reflow, Bezier-distilled
flows); at the first rounds, the students of the k-RF under one protocol (one-step students at
t = 0, N-step students on their N-step grid, uniform-t variants named as such, equal steps,
pairs and model); the OT-CFM baseline. Reports mean and 95% interval over seeds for every number,
paired differences against plain k-RF distillation, both sides of every coupling, each method's
budget. Writes results.json, report.md and PNG figures into --out.

Defaults need no download: 8gaussians -> moons, 3 seeds, K = 4 (under 10 minutes on 2 CPU cores);
--quick: 2 seeds, K = 2, tiny budgets (about a minute); --full: the whole protocol (5 seeds,
K = 4, gaussian -> checkerboard added, the extra readings and the full-OT baseline);
--redraw DIR: rewrite report.md and every figure of a finished run in DIR from its results.json
and chain-trajectories.npz, without re-running; --resume DIR: continue a run into DIR that was
killed or interrupted, from the units it finished (each pair's 1-RF, baselines, chain rounds and
students, kept as they finish; same results as one run). --jobs (default: the usable cores, at
most 2) runs that many units at once in worker processes.

A run works in a staging folder beside --out (.NAME.bezkit-staging) and replaces --out as a whole
when it is finished: a failed or killed run leaves the previous run in --out intact.

Examples:
  bezkit experiment
  bezkit experiment --quick --out /tmp/quick
  bezkit experiment --full --jobs 2 --out data/results/full
  bezkit experiment --pair 8gaussians:spirals --rounds 4 --seeds 5 --chains reflow bezier
  bezkit experiment --pair gaussian:my_points.csv --held-out-fraction 0.25
  bezkit experiment --redraw data/results
  bezkit experiment --resume data/results/full --jobs 2
  bezkit experiment --full --scheduler tcp://scheduler:8786 --out data/results/full
"""

#: The keys of :data:`bezkit.experiments.protocol.STUDENTS`, in order.
STUDENT_NAMES: tuple[str, ...] = (
    "rf-distill",
    "anchored-distill",
    "bdense",
    "anchored-distill-uniform",
    "bezier-quadratic-uniform",
    "bezier-cubic-uniform",
    "rf-distill-2",
    "anchored-distill-2",
    "bezier-quadratic-2-tangent",
    "bezier-quadratic-2-endpoint",
    "rf-distill-4",
    "anchored-distill-4",
    "bezier-quadratic-4-tangent",
    "bezier-quadratic-4-endpoint",
    "bdense-restart",
    "bezier-quadratic-2-literal",
    "bezier-quadratic-2-secant",
    "bezier-quadratic-4-secant",
    "bezier-forward-2-secant",
    "bezier-state-2-secant",
    "bezier-forward-4-secant",
    "bezier-state-4-secant",
)
#: :data:`bezkit.experiments.protocol.DEFAULT_STUDENTS`.
DEFAULT_STUDENTS: tuple[str, ...] = (
    "rf-distill",
    "anchored-distill",
    "bdense",
    "anchored-distill-uniform",
    "bezier-quadratic-uniform",
    "bezier-cubic-uniform",
    "rf-distill-2",
    "anchored-distill-2",
    "bezier-quadratic-2-tangent",
    "bezier-quadratic-2-endpoint",
    "rf-distill-4",
    "anchored-distill-4",
    "bezier-quadratic-4-tangent",
    "bezier-quadratic-4-endpoint",
    "bezier-quadratic-2-secant",
    "bezier-quadratic-4-secant",
    "bezier-forward-2-secant",
    "bezier-state-2-secant",
    "bezier-forward-4-secant",
    "bezier-state-4-secant",
    "bdense-restart",
)
#: :data:`bezkit.experiments.protocol.BASELINE_METHODS`.
BASELINE_METHODS: tuple[str, ...] = ("otcfm", "full-ot")
#: :data:`bezkit.experiments.config.CHAIN_KINDS`.
CHAIN_KINDS: tuple[str, ...] = ("reflow", "anchored", "bezier")


@dataclass(frozen=True)
class ConfigDefaults:
    """The defaults of :class:`~bezkit.experiments.config.ExperimentConfig` that the help shows."""

    seeds: int = 3
    rounds: int = 4
    student_rounds: int = 1
    held_out_fraction: float = 0.2
    flow_steps: int = 2000
    baseline_steps: int = 1000
    round_steps: int = 800
    student_steps: int = 400
    n_pairs: int = 4096
    n_eval: int = 4096
    eval_draws: int = 2
    sigma: float = 0.0
    budget_factors: tuple[int, ...] = (1, 4)
    w2: str = "sliced"


DEFAULTS = ConfigDefaults()

#: The options a run takes one value of, by their argparse names (the experiment's config fields).
SCALAR_OPTIONS = (
    "seeds",
    "rounds",
    "student_rounds",
    "held_out_fraction",
    "flow_steps",
    "baseline_steps",
    "round_steps",
    "student_steps",
    "n_pairs",
    "n_eval",
    "eval_draws",
    "w2",
    "sigma",
)
#: Every option that fixes a run's numbers: stored with it, so ``--resume`` refuses them.
RUN_OPTIONS = (
    *SCALAR_OPTIONS,
    "budget_factors",
    "pairs",
    "methods",
    "chains",
    "baselines",
    "exact",
)


def pair(text: str) -> tuple[str, str]:
    """argparse type: ``SOURCE:TARGET``, each a dataset name or a .npy/.csv file."""
    if ":" not in text:
        raise argparse.ArgumentTypeError(f"a pair is SOURCE:TARGET, got {text!r}")
    src, tgt = text.split(":", 1)
    return dataset(src), dataset(tgt)


def fraction(text: str) -> float:
    """argparse type: the held-out fraction, a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"the held-out fraction must lie strictly between 0 and 1, got {value}"
        )
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit experiment`` and its options to ``subparsers`` without importing torch
    (defaults from :data:`DEFAULTS`, :class:`~bezkit.experiments.config.ExperimentConfig`'s); the
    command runs :func:`bezkit.cli.experiment.run` (``func="experiment"``)."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "experiment",
        help=COMMAND_HELP["experiment"],
        description=DESCRIPTION,
    )
    p.add_argument(
        "--out",
        default="results/experiment",
        help="output folder for results.json, report.md and the figures",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (or discard an interrupted one; otherwise an error)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="2 seeds, K = 2, tiny budgets: about a minute"
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="the whole protocol: 5 seeds, K = 4, a harder pair, every reading",
    )
    size.add_argument(
        "--redraw",
        metavar="DIR",
        default=None,
        help="run nothing: rewrite report.md and every figure in DIR from its results.json and "
        "chain-trajectories.npz (each file replaced atomically)",
    )
    size.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the interrupted run into DIR from the pairs it finished, with its stored "
        "options (--jobs, --threads, --scheduler and --quiet may differ)",
    )
    p.add_argument(
        "--pair",
        type=pair,
        action="append",
        dest="pairs",
        metavar="SOURCE:TARGET",
        help="a source:target pair (repeatable); names or .npy/.csv files. Default: "
        "8gaussians:moons (--full: also gaussian:checkerboard)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"number of training seeds >= 1 (default {d.seeds}; --quick 2, --full 5)",
    )
    p.add_argument(
        "--rounds",
        "-K",
        type=int,
        default=None,
        help=f"chain rounds K >= 1 (default {d.rounds}; --quick 2, --full 4)",
    )
    p.add_argument(
        "--student-rounds",
        type=int,
        default=None,
        help=f"train the students at k = 1..this (default {d.student_rounds}; at most K)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help=f"student methods (default: {' '.join(DEFAULT_STUDENTS)}); known: "
        f"{' '.join(STUDENT_NAMES)}",
    )
    p.add_argument(
        "--chains",
        nargs="*",
        default=None,
        metavar="KIND",
        help=f"chain kinds (default: all; known: {' '.join(CHAIN_KINDS)}); none: --chains",
    )
    p.add_argument(
        "--baselines",
        nargs="*",
        default=None,
        metavar="NAME",
        help=f"OT baselines (default: otcfm; known: {' '.join(BASELINE_METHODS)})",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="first training seed; evaluation draws")
    p.add_argument(
        "--held-out-fraction",
        type=fraction,
        default=None,
        help=f"share of a point file held out as the reference (default {d.held_out_fraction})",
    )
    for name, help_ in (
        ("flow-steps", f"training steps of the 1-RF (default {d.flow_steps})"),
        ("baseline-steps", f"training steps of the OT baselines (default {d.baseline_steps})"),
        ("round-steps", f"training steps of each chain round (default {d.round_steps})"),
        ("student-steps", f"training steps of every student (default {d.student_steps})"),
        ("n-pairs", f"pairs generated per pool (default {d.n_pairs})"),
        ("n-eval", f"evaluation samples per draw (default {d.n_eval})"),
        ("eval-draws", f"evaluation draws (default {d.eval_draws})"),
    ):
        p.add_argument(f"--{name}", type=positive_int, default=None, help=help_)
    p.add_argument(
        "--sigma",
        type=nonnegative_float,
        default=None,
        help=f"noise of the Gaussian path around the line for the flows trained from data (1-RF "
        f"= I-CFM, the OT baselines), as torchcfm's sigma (default {d.sigma}: no noise)",
    )
    p.add_argument(
        "--budget-factors",
        type=positive_int,
        nargs="+",
        default=None,
        metavar="F",
        help="student budgets as multiples of --student-steps, increasing (default "
        f"{' '.join(map(str, d.budget_factors))}: a claim is yes / no only where all agree)",
    )
    p.add_argument(
        "--w2",
        choices=("sliced", "exact"),
        default=None,
        help=f"W2 estimator of every number (default {d.w2}; exact: POT, n_eval <= 8192)",
    )
    p.add_argument(
        "--exact",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="students whose W2 at their own NFE is also computed exactly (POT)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads during the run (1 is fastest for these small MLPs)",
    )
    p.add_argument(
        "--jobs",
        type=jobs_count,
        default="auto",
        metavar="N",
        help="worker processes, each with --threads torch threads: one pair's units (the 1-RF, "
        "baselines, chain rounds, students) run that many at once, several pairs one pair per "
        "worker; 'auto' (default): the usable cores, at most 2 (about 0.5 GB per worker). The "
        "numbers do not depend on it; the workers end with this process",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run the pairs on this Dask distributed scheduler (e.g. tcp://host:8786; needs "
        "bezkit[dask]) instead of local processes; same numbers as one process",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func="experiment", check_args=check_options)
    return p


def check_options(args: argparse.Namespace) -> None:
    """The checks that need no torch (``check_args``, before the command is imported):
    ``--scheduler`` needs Dask, ``--resume`` takes no option that fixes a run's numbers."""
    if args.redraw is not None:
        return
    if args.scheduler is not None and not dask_available():
        raise CLIError("--scheduler needs dask.distributed: pip install 'bezkit[dask]'")
    if args.resume is None:
        return
    given = [n for n in RUN_OPTIONS if getattr(args, n, None) is not None]
    if args.seed != 0:
        given.append("seed")
    if args.overwrite:
        given.append("overwrite")
    if given:
        names = ", ".join("--pair" if n == "pairs" else "--" + n.replace("_", "-") for n in given)
        raise CLIError(f"--resume continues the stored options of the run; drop {names}")
