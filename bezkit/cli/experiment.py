"""``bezkit experiment``: the 2D error-accumulation experiment (the README's main job), run.

The options and their help are in :mod:`bezkit.cli.experiment_options` (torch-free, so that
``--help`` and usage errors start fast); this module checks the rest of the input (the pairs'
data, the sizes, ``--out``) and runs, resumes or redraws the experiment."""

from __future__ import annotations

import argparse
import shlex
import sys
import zipfile
from pathlib import Path

import matplotlib

from bezkit.cli.common import CLIError
from bezkit.cli.experiment_options import SCALAR_OPTIONS, add_parser
from bezkit.cli.inputs import load_sampler
from bezkit.cli.outputs import check_output, claim_output_dir
from bezkit.data.split import split_points
from bezkit.executor import WorkerLost
from bezkit.experiments.config import ExperimentConfig
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


def _resume(args: argparse.Namespace) -> int:
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
            advice=f"use a smaller {big}" + (" or fewer --jobs (--jobs 1)" if jobs > 1 else ""),
        )
    except MemoryEstimateError as err:
        raise CLIError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    """``bezkit experiment``: redraw a finished run (``--redraw DIR``), continue an interrupted
    one (``--resume DIR``), or check every option, claim ``--out`` and run the configured
    experiment; returns the exit code. :func:`bezkit.cli.experiment_options.check_options` has
    checked ``--scheduler`` and ``--resume``'s options before (``check_args``)."""
    matplotlib.use("Agg")  # the command writes figure files only
    if args.redraw is not None:
        return _redraw(args.redraw)
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
            f"{err}; the previous run in {folder} is intact and the finished pairs and stages are "
            f"kept: continue with `bezkit experiment --resume {folder}`",
            code=1,
        ) from None
    except WorkerLost as err:
        folder = args.resume if args.resume is not None else args.out
        raise CLIError(
            f"{err}; continue with `bezkit experiment --resume {folder}`", code=1
        ) from None


def _run(args: argparse.Namespace) -> int:
    overrides = {n: getattr(args, n) for n in SCALAR_OPTIONS if getattr(args, n) is not None}
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
