"""The options of ``bezkit evaluate``, without torch: the parser is built (``--help``, usage
errors) before torch is imported; the command runs :func:`bezkit.cli.evaluate.run`."""

from __future__ import annotations

import argparse

from bezkit.cli.common import (
    COMMAND_HELP,
    positive_float,
    positive_int,
    seed_int,
)
from bezkit.cli.datasets import dataset

__all__ = ["DEFAULT_N", "DEFAULT_STEPS", "DESCRIPTION", "MAX_N", "SOLVER_NAMES", "add_parser"]

# the names of bezkit.solvers.SOLVERS (a test keeps them equal)
SOLVER_NAMES: tuple[str, ...] = ("euler", "midpoint", "heun", "rk4", "dopri5")

DEFAULT_STEPS = (1, 2, 4, 100)
MAX_N = 8192  # exact W2 (bezkit.metrics.wasserstein.MAX_EXACT_N)
DEFAULT_N = 2000

DESCRIPTION = """\
Sample a trained 2D flow and measure it; prints JSON to stdout.

From --n source points (seeded by --seed) the flow dZ/dt = v(Z, t) is integrated from t = 0 to 1
with --solver, once per --steps value, and measured as the experiment measures its models
(bezkit.experiments.evaluate.evaluate_flow). The JSON holds:
  noise_floor   W2 between two independent target samples of size n: what a perfect model gets
  ot_cost       W2(source sample, held-out target)^2, the exact OT cost of the two finite samples
                (a flow's least possible transport cost, up to sampling noise that biases it up)
  results       per step count: steps, nfe (velocity evaluations used) and w2, the exact W2
                between the generated points and a held-out target sample of size n
  path_metrics  on the trajectories of the largest step count (all n; crossings on --m-crossings):
  straightness             int E||(Z1 - Z0) - v(Z_t, t)||^2 dt on the solver grid (0 = straight)
  normalised_straightness  straightness / E||Z1 - Z0||^2
  curvature                mean_i E||(Z_{i+1} - Z_i)/dt - (Z1 - Z0)||^2 from the states alone
  transport_cost           E||Z1 - Z0||^2, to compare with ot_cost
  path_energy              int E||v(Z_t, t)||^2 dt
  w2_squared               W2(source sample, held-out target)^2 (as ot_cost)
  normalised_path_energy   NPE = |path_energy - w2_squared| / w2_squared (Tong et al. 2024)
  crossings                pairs of trajectories (polylines) that intersect, their fraction of all
                           pairs, and the mean number of crossings per trajectory
With --test FILE the held-out target is exactly the points of FILE (.npy/.csv, no resampling) and
--n defaults to their number.
The same checkpoint and --seed give the same JSON. dopri5 is adaptive: --steps is ignored and it
runs once with --atol/--rtol ("steps": null). Runs on the CPU.

examples:
  bezkit evaluate flow
  bezkit evaluate flow --solver rk4 --steps 1 2 4 8 --n 4000 --out flow-rk4.json
  bezkit evaluate flow --solver dopri5
  bezkit evaluate flow --test test_points.npy --steps 100
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit evaluate`` and its options to ``subparsers`` (``func="evaluate"``:
    :func:`bezkit.cli.main` imports :mod:`bezkit.cli.evaluate` only to run it)."""
    p = subparsers.add_parser(
        "evaluate",
        help=COMMAND_HELP["evaluate"],
        description=DESCRIPTION,
    )
    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="checkpoint written by 'bezkit train': PATH, PATH.safetensors or PATH.json",
    )
    p.add_argument(
        "--n",
        type=positive_int,
        default=None,
        help=f"number of generated points and of held-out target points (2 to {MAX_N}; default "
        f"{DEFAULT_N}, or the number of --test points)",
    )
    p.add_argument(
        "--test",
        metavar="FILE",
        default=None,
        help="score against exactly the (n, 2) points of this .npy/.csv file (a fixed test set) "
        "instead of a fresh held-out target sample",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        metavar="SEED",
        help="seed of the source sample, the held-out target sample, the noise floor "
        "and the crossings subsample",
    )
    p.add_argument(
        "--solver", choices=SOLVER_NAMES, default="euler", help="ODE solver used to sample the flow"
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        nargs="+",
        default=list(DEFAULT_STEPS),
        metavar="N",
        help="solver step counts to evaluate, one or more, run in increasing order (put them "
        "after CHECKPOINT)",
    )
    p.add_argument(
        "--m-crossings",
        type=positive_int,
        default=200,
        metavar="M",
        help="number of trajectories (a seeded subsample) among which crossings are "
        "counted; at most --n",
    )
    p.add_argument(
        "--weights",
        choices=("ema", "model", "best"),
        default="ema",
        help="which weights to load: the EMA weights (the trained ones when the "
        "checkpoint has no EMA), the trained weights, or those of lowest validation loss "
        "(a run trained with --val-every)",
    )
    p.add_argument(
        "--source",
        type=dataset,
        default=None,
        metavar="NAME|FILE",
        help="source distribution to sample from (default: the checkpoint's)",
    )
    p.add_argument(
        "--target",
        type=dataset,
        default=None,
        metavar="NAME|FILE",
        help="target distribution to compare with (default: the checkpoint's)",
    )
    for flag, kind in (("--atol", "absolute"), ("--rtol", "relative")):
        p.add_argument(
            flag,
            type=positive_float,
            default=1e-5,
            metavar="TOL",
            help=f"{kind} tolerance of --solver dopri5",
        )
    p.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="also write the JSON to FILE, atomically; an existing regular FILE is replaced, a "
        "symbolic link is followed (its target is replaced), anything else (a folder, a device) "
        "is refused; FILE is checked before any work (default: stdout only)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines on stderr (shown when stderr is a terminal)",
    )
    p.set_defaults(func="evaluate")
    return p
