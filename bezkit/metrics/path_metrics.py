"""How straight a flow is, and what it costs (METHODS.md section 5).

On a solver grid ``t_0 < ... < t_N`` with states ``Z_{t_i}`` (a recorded trajectory):

- straightness (Liu et al. 2022): ``S = sum_i dt_i E||(Z_1 - Z_0) - v(Z_{t_i}, t_i)||^2``
  (left Riemann sum of ``int_0^1``); normalised by ``E||Z_1 - Z_0||^2``. Zero means straight.
- curvature (Lee et al. 2023), from the discrete trajectory only:
  ``mean_i E||(Z_{t_{i+1}} - Z_{t_i}) / dt_i - (Z_1 - Z_0)||^2``.
- transport cost ``E||Z_1 - Z_0||^2`` and path energy ``sum_i dt_i E||v(Z_{t_i}, t_i)||^2``.
- normalised path energy (Tong et al., TMLR 2024): ``NPE = |PE - W2^2(x0, x1)| / W2^2(x0, x1)``,
  the path energy's relative distance from the least energy any flow between the two samples
  can have (METHODS.md section 5 on the bias of ``W2^2`` between finite samples).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bezkit.solvers.fixed_step import Velocity

__all__ = [
    "curvature",
    "normalised_path_energy",
    "normalised_straightness",
    "path_energy",
    "straightness",
    "trajectory_velocities",
    "transport_cost",
]


def _check_trajectory(trajectory: Tensor, times: Tensor) -> None:
    if trajectory.ndim < 3:
        raise ValueError(
            f"trajectory must have shape (steps+1, n, *d), got {tuple(trajectory.shape)}"
        )
    if times.shape != (trajectory.shape[0],):
        raise ValueError(
            f"times must have shape ({trajectory.shape[0]},), got {tuple(times.shape)}"
        )
    if trajectory.shape[0] < 2:
        raise ValueError("a trajectory needs at least two states")


def _sq(x: Tensor) -> Tensor:
    """Per-sample squared norm ``||x||^2`` over all data dimensions, shape ``(n,)``."""
    return x.reshape(x.shape[0], -1).pow(2).sum(dim=1)


@torch.no_grad()
def trajectory_velocities(model: Velocity, trajectory: Tensor, times: Tensor) -> Tensor:
    """``v(Z_{t_i}, t_i)`` at the left end of every grid interval, shape ``(steps, n, *d)``."""
    _check_trajectory(trajectory, times)
    n = trajectory.shape[1]
    return torch.stack(
        [
            model(trajectory[i], torch.full((n,), float(times[i]), dtype=trajectory.dtype))
            for i in range(trajectory.shape[0] - 1)
        ]
    )


def straightness(
    model: Velocity, trajectory: Tensor, times: Tensor, *, velocities: Tensor | None = None
) -> float:
    """``S = sum_i dt_i E||(Z_1 - Z_0) - v(Z_{t_i}, t_i)||^2``."""
    _check_trajectory(trajectory, times)
    v = trajectory_velocities(model, trajectory, times) if velocities is None else velocities
    chord = trajectory[-1] - trajectory[0]
    dt = (times[1:] - times[:-1]).abs().double()
    dev = torch.stack([_sq(chord - v[i]).mean() for i in range(v.shape[0])]).double()
    return float((dt * dev).sum() / dt.sum())


def normalised_straightness(
    model: Velocity, trajectory: Tensor, times: Tensor, *, velocities: Tensor | None = None
) -> float:
    """``S / E||Z_1 - Z_0||^2`` (scale free)."""
    cost = transport_cost(trajectory[0], trajectory[-1])
    return straightness(model, trajectory, times, velocities=velocities) / max(cost, 1e-12)


def curvature(trajectory: Tensor, times: Tensor) -> float:
    """``mean_i E||(Z_{t_{i+1}} - Z_{t_i}) / dt_i - (Z_1 - Z_0)||^2`` from the states alone."""
    _check_trajectory(trajectory, times)
    chord = trajectory[-1] - trajectory[0]
    dt = (times[1:] - times[:-1]).to(trajectory.dtype)
    shape = (-1, 1, *([1] * (trajectory.ndim - 2)))
    slopes = (trajectory[1:] - trajectory[:-1]) / dt.reshape(shape)
    dev = (slopes - chord[None]).reshape(slopes.shape[0], slopes.shape[1], -1).pow(2).sum(-1)
    return float(dev.mean())


def transport_cost(x0: Tensor, x1: Tensor) -> float:
    """``E||X_1 - X_0||^2``."""
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape, got {tuple(x0.shape)}, {tuple(x1.shape)}"
        )
    return float(_sq(x1 - x0).double().mean())


def path_energy(
    model: Velocity, trajectory: Tensor, times: Tensor, *, velocities: Tensor | None = None
) -> float:
    """``int_0^1 E||v(Z_t, t)||^2 dt`` (left Riemann sum on the grid)."""
    v = trajectory_velocities(model, trajectory, times) if velocities is None else velocities
    dt = (times[1:] - times[:-1]).abs().double()
    return float(sum(float(dt[i]) * float(_sq(v[i]).double().mean()) for i in range(v.shape[0])))


def normalised_path_energy(energy: float, w2_squared: float) -> float:
    """``NPE = |energy - W2^2| / W2^2``: 0 when the flow's path energy equals the squared
    Wasserstein-2 distance between its source and target samples (straight optimal transport).
    ``w2_squared`` must be > 0 (``ValueError``)."""
    if not w2_squared > 0:
        raise ValueError(f"NPE needs W2^2(x0, x1) > 0, got {w2_squared}")
    return abs(energy - w2_squared) / w2_squared
