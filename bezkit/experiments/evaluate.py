"""Evaluate one 2D flow the same way for every method (METHODS.md section 5).

For held-out seeded sources ``X0`` and targets: W2 of Euler samples at each step count (with the noise
floor beside them), NFE, and on the finest trajectory straightness, curvature, transport cost
``E||Z1 - Z0||^2``, path energy and crossings among ``m`` trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bezkit.metrics.crossings import coupling_crossings, trajectory_crossings
from bezkit.metrics.straightness import (
    curvature,
    path_energy,
    straightness,
    trajectory_velocities,
    transport_cost,
)
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.solvers.ode import solve_ode

__all__ = ["evaluate_flow", "evaluate_pairs"]


@torch.no_grad()
def evaluate_flow(
    model: nn.Module,
    x0: Tensor,
    reference: Tensor,
    *,
    steps: Sequence[int] = (1, 2, 4, 8, 100),
    m_crossings: int = 200,
    keep_paths: int = 0,
) -> dict[str, Any]:
    """Metrics of ``model`` started at ``x0`` against held-out ``reference`` target samples.

    ``keep_paths > 0`` also returns, under the key ``"paths"``, the first ``keep_paths`` trajectories
    of the finest solve (a tensor, for figures; drop it before writing JSON)."""
    model.eval()
    out: dict[str, Any] = {"w2": {}, "nfe": {}}
    finest = None
    for s in sorted(steps):
        sol = solve_ode(model, x0, method="euler", steps=s, record=(s == max(steps)))
        out["w2"][str(s)] = wasserstein2(sol.x, reference)
        out["nfe"][str(s)] = sol.nfe
        finest = sol
    traj, times = finest.trajectory, finest.times
    v = trajectory_velocities(model, traj, times)
    out["straightness"] = straightness(model, traj, times, velocities=v)
    out["transport_cost"] = transport_cost(traj[0], traj[-1])
    out["normalised_straightness"] = out["straightness"] / max(out["transport_cost"], 1e-12)
    out["curvature"] = curvature(traj, times)
    out["path_energy"] = path_energy(model, traj, times, velocities=v)
    cross = trajectory_crossings(traj[:, :m_crossings])
    out["crossing_pairs"] = cross.pairs
    out["crossing_fraction"] = cross.fraction
    out["crossings_per_trajectory"] = cross.per_trajectory
    if keep_paths:
        out["paths"] = traj[:, :keep_paths].clone()
    return out


def evaluate_pairs(
    x0: Tensor, x1: Tensor, reference: Tensor, *, n: int = 2000, m_crossings: int = 500
) -> dict[str, float]:
    """A coupling's own numbers: endpoint W2 to real data, transport cost, segment crossings."""
    n = min(n, x1.shape[0], reference.shape[0])
    cross = coupling_crossings(x0[:m_crossings], x1[:m_crossings])
    return {
        "endpoint_w2": wasserstein2(x1[:n], reference[:n]),
        "transport_cost": transport_cost(x0, x1),
        "segment_crossing_fraction": cross.fraction,
    }
