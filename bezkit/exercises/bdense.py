"""Check for lesson 06 (B-DENSE): the teacher states that supervise the K branches.

``branch_states(trajectory, K) -> (K, n, d)``: from a teacher trajectory of ``N`` Euler steps
(``(N + 1, n, d)``, state ``i`` at time ``i / N``, ``N`` a multiple of ``K``) keep the states at the
branch times ``t_j = j / K``, ``j = 1..K``: rows ``N j / K`` of the trajectory. The check names the
usual slips: starting at ``j = 0`` (the input ``Z_0`` is not a target), a step ``K`` instead of
``N / K``, the wrong end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from bezkit.exercises.result import CheckResult, as_array, attempt

__all__ = ["branch_states", "check_branch_states", "check_hop_times", "hop_times"]


def branch_states(trajectory: Tensor, num_branches: int) -> Tensor:
    """The reference: ``trajectory[N j / K]`` for ``j = 1..K`` stacked to ``(K, n, d)``."""
    steps = trajectory.shape[0] - 1
    if num_branches < 1 or steps % num_branches:
        raise ValueError(f"the trajectory's {steps} steps must be a multiple of K = {num_branches}")
    return torch.stack([trajectory[steps * j // num_branches] for j in range(1, num_branches + 1)])


def _rows(value: np.ndarray, trajectory: Tensor) -> list[int | None]:
    """For each returned state, the trajectory row it equals (None when none)."""
    rows: list[int | None] = []
    traj = trajectory.numpy()
    for state in value:
        hit = [i for i in range(len(traj)) if np.allclose(state, traj[i], atol=1e-9)]
        rows.append(hit[0] if hit else None)
    return rows


def check_branch_states(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Check ``fn(trajectory, K)`` for K = 1, 2, 4 on a seeded 8-step trajectory of 5 points."""
    name = "6.1 branch targets"
    g = torch.Generator().manual_seed(0)
    trajectory = torch.cumsum(torch.randn(9, 5, 2, generator=g, dtype=torch.float64), dim=0)
    for k in (1, 2, 4):
        got = attempt(name, fn, trajectory.clone(), k)
        if isinstance(got, CheckResult):
            return got
        if isinstance(got, list | tuple):
            got = torch.stack([torch.as_tensor(s) for s in got]) if got else torch.empty(0)
        value = as_array(got, (k, 5, 2))
        if isinstance(value, str):
            return CheckResult.fail(name, f"for K = {k} {value}: one (n, d) state per branch.")
        want = branch_states(trajectory, k)
        if np.allclose(value, want.numpy(), atol=1e-9):
            continue
        rows = _rows(value, trajectory)
        expected = [8 * j // k for j in range(1, k + 1)]
        hint = ""
        if rows and rows[0] == 0:
            hint = " Z_0 is the input, not a target: the branches are j = 1..K."
        elif None not in rows:
            hint = f" The rows should be N j / K = {expected} for N = 8 steps."
        return CheckResult.fail(
            name,
            f"for K = {k} on an 8-step trajectory your states are the trajectory's rows {rows}, "
            f"expected rows {expected}.{hint}",
        )
    return CheckResult.ok(name, "K = 1, 2, 4 pick the states at t_j = j / K.")


def hop_times(num_branches: int, hops: int) -> list[float]:
    """The times a B-DENSE student visits with ``hops`` hops: ``0, 1/hops, ..., 1``.

    Each hop jumps ``K / hops`` branches, so ``hops`` must divide ``K``.
    """
    if hops < 1 or num_branches % hops:
        raise ValueError(f"hops = {hops} must divide K = {num_branches}")
    return [i / hops for i in range(hops + 1)]


def check_hop_times(fn: Callable[[int, int], list[float]]) -> CheckResult:
    """Check ``fn(K, hops)`` for (8, 1), (8, 2), (8, 4), (4, 4) and that (4, 3) raises ValueError."""
    name = "6.2 hop times"
    for k, hops in ((8, 1), (8, 2), (8, 4), (4, 4)):
        got = attempt(name, fn, k, hops)
        if isinstance(got, CheckResult):
            return got
        want = hop_times(k, hops)
        value = as_array(got)
        if isinstance(value, str) or value.shape != (hops + 1,):
            shape = value if isinstance(value, str) else f"it returned {len(value)} times"
            return CheckResult.fail(
                name, f"for K = {k}, {hops} hop(s): {shape}; expected the {hops + 1} times {want}."
            )
        if np.allclose(value, want):
            continue
        hint = " Start at 0 and end at 1." if value[0] != 0 or value[-1] != 1 else ""
        return CheckResult.fail(
            name,
            f"for K = {k}, {hops} hop(s) you gave {value.round(3).tolist()}, expected {want}.{hint}",
        )
    try:
        got = fn(4, 3)
    except NotImplementedError:
        return CheckResult.todo(name, getattr(fn, "__name__", "your function"))
    except ValueError:
        return CheckResult.ok(name, "the times match, and 3 hops over K = 4 branches are refused.")
    except Exception as err:
        return CheckResult.fail(
            name, f"for K = 4, 3 hops raise ValueError, not {type(err).__name__}."
        )
    return CheckResult.fail(
        name, f"3 hops do not divide K = 4 branches: raise ValueError instead of returning {got}."
    )
