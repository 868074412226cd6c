"""bezkit experiment: the 2D error-accumulation experiment (the README's main job).

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

from __future__ import annotations

import argparse
import shlex
import sys
import zipfile
from pathlib import Path

import matplotlib

from bezkit.cli.common import (
    COMMAND_HELP,
    CLIError,
    jobs_count,
    nonnegative_float,
    positive_int,
    seed_int,
)
from bezkit.cli.inputs import dataset, load_sampler
from bezkit.cli.outputs import check_output, claim_output_dir
from bezkit.data.split import split_points
from bezkit.executor import WorkerLost, dask_available
from bezkit.experiments.config import CHAIN_KINDS, ExperimentConfig
from bezkit.experiments.protocol import BASELINE_METHODS, DEFAULT_STUDENTS, STUDENTS
from bezkit.experiments.run import (
    ExperimentInterrupted,
    resume_experiment,
    rewrite_report,
    run_experiment,
)
from bezkit.experiments.staging import staging_dir
from bezkit.experiments.trajectories import TRAJECTORIES_FILE
from bezkit.files.atomic import remove_stale_temp_files
from bezkit.training.memory import (
    MemoryEstimateError,
    check_fits_in_memory,
    estimate_experiment_bytes,
    largest_part,
)

__all__ = ["add_parser", "run"]


def _pair(text: str) -> tuple[str, str]:
    if ":" not in text:
        raise argparse.ArgumentTypeError(f"a pair is SOURCE:TARGET, got {text!r}")
    src, tgt = text.split(":", 1)
    return dataset(src), dataset(tgt)


def _fraction(text: str) -> float:
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
    """Add ``bezkit experiment`` and its options to ``subparsers`` (defaults from
    :class:`~bezkit.experiments.config.ExperimentConfig`)."""
    d = ExperimentConfig()
    p = subparsers.add_parser(
        "experiment",
        help=COMMAND_HELP["experiment"],
        description=__doc__,
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
        type=_pair,
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
        f"{' '.join(STUDENTS)}",
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
        type=_fraction,
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
    p.set_defaults(func=run)
    return p


def _redraw(folder: str) -> int:
    if not (Path(folder) / "results.json").is_file():
        raise CLIError(
            f"--redraw: {folder} has no results.json (not the folder of a finished "
            "`bezkit experiment` run); nothing was written"
        )
    lock = claim_output_dir(folder, what="experiment", option="--redraw")  # no run writes there
    # what interrupted writes left behind (".chain-trajectories.npz.x1y2.tmp"): ours to remove
    for tmp in Path(folder).glob(".*.tmp"):
        name = tmp.name[1:].rsplit(".", 2)[0]  # ".NAME.RANDOM.tmp" -> NAME
        remove_stale_temp_files(Path(folder) / name, owner=lock)
    try:
        figures = rewrite_report(folder)
    except (ValueError, KeyError, OSError) as err:
        raise CLIError(f"--redraw: {folder}: {err}") from None
    except (TypeError, AttributeError, IndexError, EOFError, zipfile.BadZipFile) as err:
        raise CLIError(
            f"--redraw: {folder}: results.json or {TRAJECTORIES_FILE} is damaged or was not "
            f"written by `bezkit experiment` ({type(err).__name__}: {err}); nothing was written "
            "over them; run the experiment again"
        ) from None
    print(f"rewrote {folder}/report.md and {len(figures)} figures")
    return 0


#: The options a run takes one value of, by their argparse names (the experiment's config fields).
_SCALAR_OPTIONS = (
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
_RUN_OPTIONS = (
    *_SCALAR_OPTIONS,
    "budget_factors",
    "pairs",
    "methods",
    "chains",
    "baselines",
    "exact",
)


def _resume(args: argparse.Namespace) -> int:
    given = [n for n in _RUN_OPTIONS if getattr(args, n, None) is not None]
    if args.seed != 0:
        given.append("seed")
    if args.overwrite:
        given.append("overwrite")
    if given:
        names = ", ".join("--pair" if n == "pairs" else "--" + n.replace("_", "-") for n in given)
        raise CLIError(f"--resume continues the stored options of the run; drop {names}")
    if not staging_dir(args.resume).is_dir():
        finished = (Path(args.resume) / "results.json").is_file()
        raise CLIError(
            f"--resume: {args.resume} has no interrupted run to resume"
            + (" (it holds a finished run)" if finished else "")
        )
    # the finished stages are kept there: a read-only or full disk is an error before any work
    check_output(staging_dir(args.resume), option="--resume")
    _lock = claim_output_dir(args.resume, what="experiment", option="--resume")
    try:
        results = resume_experiment(
            args.resume,
            threads=args.threads,
            jobs=args.jobs,
            scheduler=args.scheduler,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(f"--resume: {err}") from None
    print(
        f"resumed and finished {args.resume}: results.json, report.md and "
        f"{len(results['figures'])} figures"
    )
    return 0


def _check_pairs(cfg: ExperimentConfig) -> None:
    """Every pair's data, up front: 2D points, a point file that splits into a training and a
    held-out part, and no two pairs writing the same files (figures are named
    ``SOURCE-to-TARGET-*.png`` from the file names without folder and suffix)."""
    seen: dict[str, tuple[str, str]] = {}
    for src, tgt in cfg.pairs:
        slug = f"{Path(src).stem}-to-{Path(tgt).stem}"
        if slug in seen:
            a, b = seen[slug]
            same = (a, b) == (src, tgt)
            raise CLIError(
                f"--pair {src}:{tgt} "
                + ("is given twice" if same else f"and --pair {a}:{b} have the same file names")
                + f": both would write {slug}-*.png; "
                + ("give each pair once" if same else "rename one of the data files")
            )
        seen[slug] = (src, tgt)
        for name in (src, tgt):
            sampler = load_sampler(name, "pair")
            points = getattr(sampler, "points", None)
            if points is None:
                continue
            try:
                split_points(points, cfg.held_out_fraction, 0)
            except ValueError as err:
                raise CLIError(f"--pair: data file {name}: {err}") from None


def _check_memory(cfg: ExperimentConfig, jobs: int = 1) -> None:
    """Refuse sizes (``--n-pairs``, ``--n-eval``, ``--eval-draws``) whose estimated memory
    exceeds what the machine has, before any training
    (:func:`bezkit.training.memory.estimate_experiment_bytes`, once for this process and once
    for each of the ``jobs`` workers)."""
    parts = estimate_experiment_bytes(
        n_pairs=cfg.n_pairs,
        n_eval=cfg.n_eval,
        eval_draws=cfg.eval_draws,
        batch_size=cfg.batch_size,
        hidden=cfg.hidden,
        depth=cfg.depth,
        full_ot_points=cfg.full_ot_points if "full-ot" in cfg.baselines else 0,
        n_projections=cfg.n_projections,
        many_steps=cfg.many_steps,
    )
    big = largest_part(parts)
    value = getattr(cfg, big.lstrip("-").replace("-", "_"), None)
    try:
        check_fits_in_memory(
            sum(parts.values()) * (1 + (jobs if jobs > 1 else 0)),
            what=f"the experiment with {big} {value}" + (f" in {jobs} workers" if jobs > 1 else ""),
            advice=f"use a smaller {big}",
        )
    except MemoryEstimateError as err:
        raise CLIError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    """``bezkit experiment``: redraw a finished run (``--redraw DIR``), continue an interrupted
    one (``--resume DIR``), or check every option, claim ``--out`` and run the configured
    experiment; returns the exit code."""
    matplotlib.use("Agg")  # the command writes figure files only
    if args.redraw is not None:
        return _redraw(args.redraw)
    if args.scheduler is not None and not dask_available():
        raise CLIError("--scheduler needs dask.distributed: pip install 'bezkit[dask]'")
    try:
        if args.resume is not None:
            return _resume(args)
        return _run(args)
    except ExperimentInterrupted as err:
        print(f"bezkit experiment: {err}", file=sys.stderr)
        return 130
    except ConnectionError as err:
        raise CLIError(f"--scheduler: {err}") from None
    except OSError as err:  # a full disk, a failed swap: the previous run was not touched
        folder = args.resume if args.resume is not None else args.out
        raise CLIError(
            f"{err}; the previous run in {folder} is intact and the finished stages are kept: "
            f"continue with `bezkit experiment --resume {folder}`",
            code=1,
        ) from None
    except WorkerLost as err:
        folder = args.resume if args.resume is not None else args.out
        raise CLIError(
            f"{err}; continue with `bezkit experiment --resume {folder}`", code=1
        ) from None


def _run(args: argparse.Namespace) -> int:
    overrides = {n: getattr(args, n) for n in _SCALAR_OPTIONS if getattr(args, n) is not None}
    if args.budget_factors is not None:
        overrides["budget_factors"] = tuple(args.budget_factors)
    if args.pairs:
        overrides["pairs"] = list(args.pairs)
    for name, attr in (
        ("methods", "methods"),
        ("chains", "chains"),
        ("baselines", "baselines"),
        ("exact_methods", "exact"),
    ):
        if getattr(args, attr) is not None:
            overrides[name] = tuple(getattr(args, attr))
    overrides["seed"] = args.seed
    overrides["progress"] = not args.quiet
    if args.quick:
        cfg = ExperimentConfig.quick(**overrides)
    elif args.full:
        cfg = ExperimentConfig.full(**overrides)
    else:
        cfg = ExperimentConfig(**overrides)
    try:
        cfg.validate()
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise CLIError(str(err)) from None
    check_output(staging_dir(args.out).parent)  # the run is staged beside --out, then swapped in
    _check_pairs(cfg)
    _check_memory(cfg, args.jobs)
    _lock = claim_output_dir(args.out, what="experiment")  # writable, ours until we exit
    command = "bezkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    try:
        results = run_experiment(
            cfg,
            args.out,
            command=command,
            overwrite=args.overwrite,
            threads=args.threads,
            jobs=args.jobs,
            scheduler=args.scheduler,
        )
    except FileExistsError as err:
        raise CLIError(str(err)) from None
    print(
        f"wrote {args.out}/results.json, report.md and {len(results['figures'])} figures "
        f"in {results['wall_seconds']:.0f} s"
    )
    return 0
