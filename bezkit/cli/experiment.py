"""bezkit experiment: the 2D error-accumulation experiment (the README's main job).

Trains, for every (source, target) pair and every reflow round k = 1..K: the k-RF, its one-step
distillation, one-step distillation on data-anchored pairs, quadratic and cubic (multi-teacher)
Bezier distillation, B-DENSE, and the OT-CFM and full-OT-map baselines. Evaluates W2 at 1, 2, 4, 8
and 100 Euler steps beside the noise floor, straightness, curvature, crossings, transport cost and
error accumulation across k. Writes results.json, report.md and PNG figures into --out.

Defaults need no download: 8gaussians -> moons and gaussian -> moons, K = 3 (about 10 minutes on
2 CPU cores); --quick runs one pair, K = 2, small budgets (about a minute).

Examples:
  bezkit experiment
  bezkit experiment --quick --out /tmp/quick
  bezkit experiment --pair 8gaussians:spirals --rounds 2 --methods rf rf-distill bezier-quadratic
  bezkit experiment --pair gaussian:my_points.csv
"""

from __future__ import annotations

import argparse
import shlex
import sys

from bezkit.cli.common import CLIError, claim_output_dir, dataset, positive_int

__all__ = ["add_parser", "run"]


def _pair(text: str) -> tuple[str, str]:
    if ":" not in text:
        raise argparse.ArgumentTypeError(f"a pair is SOURCE:TARGET, got {text!r}")
    src, tgt = text.split(":", 1)
    return dataset(src), dataset(tgt)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from bezkit.experiments.config import DEFAULT_METHODS, KNOWN_METHODS, ExperimentConfig

    d = ExperimentConfig()
    p = subparsers.add_parser(
        "experiment", help="run the 2D error-accumulation experiment", description=__doc__
    )
    p.add_argument(
        "--out",
        default="results/experiment",
        help="output folder for results.json, report.md and the figures",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing results.json in --out (otherwise an error)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one pair, K = 2, small budgets: about a minute (used by the tests)",
    )
    p.add_argument(
        "--pair",
        type=_pair,
        action="append",
        dest="pairs",
        metavar="SOURCE:TARGET",
        help="a source:target pair (repeatable); names or .npy/.csv files. Default: "
        "8gaussians:moons and gaussian:moons (--quick: 8gaussians:moons)",
    )
    p.add_argument(
        "--rounds",
        "-K",
        type=int,
        default=None,
        help=f"number of reflow rounds K >= 1 (default {d.rounds}; --quick 2)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help=f"methods to run (default: {' '.join(DEFAULT_METHODS)}); known: "
        f"{' '.join(KNOWN_METHODS)}",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every sample, init and batch")
    p.add_argument(
        "--flow-steps",
        type=positive_int,
        default=None,
        help=f"training steps of 1-RF, OT-CFM, full-OT (default {d.flow_steps})",
    )
    p.add_argument(
        "--round-steps",
        type=positive_int,
        default=None,
        help=f"training steps of each reflow round and student (default {d.round_steps})",
    )
    p.add_argument(
        "--n-pairs",
        type=positive_int,
        default=None,
        help=f"pairs generated per round (default {d.n_pairs})",
    )
    p.add_argument(
        "--n-eval",
        type=positive_int,
        default=None,
        help=f"held-out samples for W2 (default {d.n_eval}; at most 8192)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads during the run (1 is fastest for these small MLPs)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from bezkit.experiments.config import ExperimentConfig
    from bezkit.experiments.run import run_experiment

    overrides = {
        name: getattr(args, name)
        for name in ("rounds", "flow_steps", "round_steps", "n_pairs", "n_eval")
        if getattr(args, name) is not None
    }
    if args.pairs:
        overrides["pairs"] = list(args.pairs)
    if args.methods:
        overrides["methods"] = tuple(args.methods)
    overrides["seed"] = args.seed
    overrides["progress"] = not args.quiet
    cfg = ExperimentConfig.quick(**overrides) if args.quick else ExperimentConfig(**overrides)
    try:
        cfg.validate()
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise CLIError(str(err)) from None
    _lock = claim_output_dir(args.out, what="experiment")  # writable, ours until we exit
    command = "bezkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    try:
        results = run_experiment(
            cfg, args.out, command=command, overwrite=args.overwrite, threads=args.threads
        )
    except FileExistsError as err:
        raise CLIError(str(err)) from None
    print(
        f"wrote {args.out}/results.json, report.md and {len(results['figures'])} figures "
        f"in {results['wall_seconds']:.0f} s"
    )
    return 0
