"""``bezkit evaluate``: sample a trained 2D flow and measure it (METHODS.md section 5), as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.cli.common import (
    CLIError,
    check_finite,
)
from bezkit.cli.evaluate_options import DEFAULT_N, DEFAULT_STEPS, MAX_N
from bezkit.cli.evaluate_options import add_parser as add_parser_without_torch
from bezkit.cli.inputs import data_ref, data_sha256, load_sampler
from bezkit.cli.outputs import check_output, refuse_input_as_output, write_json_atomic
from bezkit.data import Sampler, load_points
from bezkit.experiments.evaluate import PathMetrics, evaluate_flow
from bezkit.metrics import noise_floor, wasserstein2
from bezkit.solvers import SOLVERS
from bezkit.training import CheckpointError
from bezkit.training.checkpoint import checkpoint_files
from bezkit.training.model_io import load_model

__all__ = ["add_parser", "evaluate_checkpoint", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit evaluate`` and its options to ``subparsers``."""
    p = add_parser_without_torch(subparsers)
    p.set_defaults(func=run)
    return p


def _seeds(seed: int) -> dict[str, int]:
    """Independent seeds for each random draw, derived from one user seed."""
    names = ("source", "heldout", "floor", "subsample")
    states = np.random.SeedSequence(seed).generate_state(len(names), dtype=np.uint64)
    return {name: int(s % (2**63)) for name, s in zip(names, states, strict=True)}


class _Progress:
    """Phase lines on stderr with the seconds since the start: ``bezkit evaluate: 3.1 s: ...``."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, line: str) -> None:
        print(f"bezkit evaluate: {time.perf_counter() - self.t0:5.1f} s: {line}", file=sys.stderr)


def _data_files(*names: str | None) -> list[str]:
    """The point files among dataset ``names`` (a name such as ``moons`` is not a file)."""
    return [n for n in names if n is not None and n.lower().endswith((".npy", ".csv"))]


def _check_options(solver: str, steps: Sequence[int], n: int) -> None:
    if solver not in SOLVERS:
        raise CLIError(f"unknown solver {solver!r}; known solvers: {', '.join(SOLVERS)}")
    if not steps or any(s < 1 for s in steps):
        raise CLIError(f"--steps must be integers >= 1, got {list(steps)}")
    if not 2 <= n <= MAX_N:
        raise CLIError(f"--n must lie in [2, {MAX_N}] (exact W2), got {n}")


def _data_name(checkpoint: str, data: dict[str, Any], role: str, given: str | None) -> str:
    """The ``role`` (source / target) distribution: ``given`` or the checkpoint's; a data file the
    checkpoint was trained on must still have the SHA-256 it recorded."""
    name = given or data.get(role)
    if name is None:
        raise CLIError(
            f"checkpoint {checkpoint} does not record its {role} distribution "
            f"(not written by 'bezkit train'); pass --{role}"
        )
    recorded = data.get(f"{role}_sha256")
    same_file = data_ref(name) == data.get(role)
    if recorded is not None and same_file and data_sha256(name) != recorded:
        raise CLIError(
            f"the {role} data file {name} changed since {checkpoint} was trained on it (its "
            f"SHA-256 is no longer {recorded[:12]}...); restore it, or pass --{role} "
            "explicitly with another file to evaluate against that"
        )
    return str(name)


def _check_2d_velocity(model: nn.Module, x0: Tensor, checkpoint: str) -> None:
    try:
        with torch.no_grad():
            out = model(x0[:2], torch.zeros(2))
    except (ValueError, RuntimeError) as err:
        raise CLIError(f"the model in {checkpoint} does not take 2D points: {err}") from None
    if out.shape != (2, 2):
        raise CLIError(
            f"the model in {checkpoint} maps 2D points to shape {tuple(out.shape[1:])}; "
            "a 2D velocity field is needed"
        )


def _test_points(test: str | Tensor) -> Tensor:
    """The fixed test set: a tensor as given, or the points of a .npy/.csv file (checked)."""
    if isinstance(test, Tensor):
        points = test
    else:
        try:
            points = load_points(test)
        except (FileNotFoundError, ValueError, TypeError) as err:
            raise CLIError(f"--test: {err}") from None
    if points.ndim != 2 or points.shape[1] != 2:
        raise CLIError(f"--test must hold (n, 2) points, got shape {tuple(points.shape)}")
    if not 2 <= points.shape[0] <= MAX_N:
        raise CLIError(f"--test must hold 2 to {MAX_N} points (exact W2), got {points.shape[0]}")
    return points.float()


def evaluate_checkpoint(
    checkpoint: str,
    *,
    n: int | None = None,
    test: str | Tensor | None = None,
    seed: int = 0,
    solver: str = "euler",
    steps: tuple[int, ...] | list[int] = DEFAULT_STEPS,
    m_crossings: int = 200,
    weights: str = "ema",
    source: str | None = None,
    target: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The numbers ``bezkit evaluate`` prints, as a dict; bad input raises :class:`CLIError`.

    ``test``: a fixed test set (a tensor or a .npy/.csv file) scored as it is, in place of a
    held-out sample of the target; ``n`` then defaults to its size. ``progress(line)`` is told
    each phase as it starts (the evaluation takes seconds to minutes)."""
    fixed = None if test is None else _test_points(test)
    if n is None:
        n = DEFAULT_N if fixed is None else fixed.shape[0]
    _check_options(solver, steps, n)
    try:
        model, meta = load_model(checkpoint, use_ema=weights == "ema", best=weights == "best")
    except (FileNotFoundError, CheckpointError) as err:
        raise CLIError(str(err)) from None
    data = meta.get("data") or {}
    names = {
        "source": _data_name(checkpoint, data, "source", source),
        "target": _data_name(checkpoint, data, "target", target),
    }
    src: Sampler = load_sampler(names["source"], "source")
    tgt: Sampler = load_sampler(names["target"], "target")

    seeds = _seeds(seed)
    x0 = src.sample(n, torch.Generator().manual_seed(seeds["source"]))
    heldout = (
        fixed
        if fixed is not None
        else tgt.sample(n, torch.Generator().manual_seed(seeds["heldout"]))
    )
    _check_2d_velocity(model, x0, checkpoint)
    say = progress or (lambda _line: None)
    say(f"noise floor of the target (n = {n}, exact W2)")
    floor = noise_floor(tgt, n, seed=seeds["floor"])
    counts = "adaptive" if solver == "dopri5" else ", ".join(map(str, sorted(set(steps))))
    say(f"sampling with {solver} at {counts} step(s), W2 of each and the path metrics")

    try:
        evaluation = evaluate_flow(
            model,
            x0,
            heldout,
            steps=steps,
            method=solver,
            paths=True,
            crossings=m_crossings,
            crossing_seed=seeds["subsample"],
            atol=atol,
            rtol=rtol,
            npe=True,
        )
    except ValueError as err:  # NaN or inf samples, W2 = 0: the model diverged or degenerate data
        raise CLIError(str(err), code=1) from None
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model": meta.get("model"),
        "weights": meta["loaded_weights"],
        "train_step": meta.get("step"),
        "source": names["source"],
        "target": names["target"],
        "solver": solver,
        "n": n,
        "test": None if test is None else _test_ref(test),
        "seed": seed,
        "noise_floor": floor,
        "ot_cost": _ot_cost(evaluation.paths, x0, heldout),
        **evaluation.to_dict(),
    }
    say("done")
    if solver == "dopri5":
        report.update(atol=atol, rtol=rtol)
    try:
        check_finite(report)
    except ValueError as err:
        raise CLIError(f"evaluation produced a non-finite number: {err}", code=1) from None
    return report


def _ot_cost(paths: PathMetrics | None, x0: Tensor, heldout: Tensor) -> float:
    """``W2(x0, heldout)^2``: the path metrics' (the same points) when measured, else computed."""
    if paths is not None and paths.w2_squared is not None:
        return paths.w2_squared
    return wasserstein2(x0, heldout) ** 2


def _test_ref(test: str | Tensor) -> dict[str, Any]:
    """How the JSON names a fixed test set: its file and SHA-256, or that it was given in memory."""
    if isinstance(test, Tensor):
        return {"file": None, "points": int(test.shape[0])}
    return {"file": data_ref(test), "sha256": data_sha256(test)}


def run(args: argparse.Namespace) -> int:
    """``bezkit evaluate``: check ``--out``, evaluate the checkpoint, print the JSON (and write it)."""
    out = None if args.out is None else check_output(args.out, option="--out", folder=False)
    if args.out is not None:  # never the checkpoint or a data file being read
        ckpt = (args.checkpoint, *checkpoint_files(args.checkpoint))
        refuse_input_as_output(args.out, (*ckpt, *_data_files(args.source, args.target, args.test)))
    report = evaluate_checkpoint(
        args.checkpoint,
        n=args.n,
        test=args.test,
        seed=args.seed,
        solver=args.solver,
        steps=args.steps,
        m_crossings=args.m_crossings,
        weights=args.weights,
        source=args.source,
        target=args.target,
        atol=args.atol,
        rtol=args.rtol,
        progress=None if args.quiet or not sys.stderr.isatty() else _Progress(),
    )
    text = json.dumps(report, indent=2, allow_nan=False)
    if out is not None:
        refuse_input_as_output(args.out, _data_files(report["source"], report["target"]))
        write_json_atomic(out, report)
    print(text)
    return 0
