"""One step of the classic fixed-step ODE schemes for ``dx/dt = v(x, t)``.

Each step maps ``(v, x, t, dt)`` to ``x(t + dt)``; ``dt`` may be negative (integration backwards in
time). ``t`` is a Python float; the model is called as ``v(x, t_batch)`` with ``t_batch`` of shape
``(n,)``. NFE (velocity evaluations) per step: Euler 1, midpoint 2, Heun 2, RK4 4.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "FIXED_STEP",
    "Velocity",
    "call_velocity",
    "euler_step",
    "heun_step",
    "midpoint_step",
    "rk4_step",
]

Velocity = Callable[[Tensor, Tensor], Tensor]


def call_velocity(v: Velocity, x: Tensor, t: float) -> Tensor:
    """Evaluate ``v(x, t)`` with ``t`` broadcast to a batch of shape ``(n,)``."""
    return v(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))


def euler_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    """``x + dt v(x, t)``."""
    return x + dt * call_velocity(v, x, t)


def midpoint_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    """``x + dt v(x + dt/2 v(x, t), t + dt/2)``."""
    half = x + 0.5 * dt * call_velocity(v, x, t)
    return x + dt * call_velocity(v, half, t + 0.5 * dt)


def heun_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    """Heun (explicit trapezoid): ``x + dt/2 (k1 + k2)``, ``k2 = v(x + dt k1, t + dt)``."""
    k1 = call_velocity(v, x, t)
    k2 = call_velocity(v, x + dt * k1, t + dt)
    return x + 0.5 * dt * (k1 + k2)


def rk4_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    """Classic fourth-order Runge-Kutta: ``x + dt/6 (k1 + 2 k2 + 2 k3 + k4)`` with
    ``k1 = v(x, t)``, ``k2 = v(x + dt/2 k1, t + dt/2)``, ``k3 = v(x + dt/2 k2, t + dt/2)``,
    ``k4 = v(x + dt k3, t + dt)``."""
    k1 = call_velocity(v, x, t)
    k2 = call_velocity(v, x + 0.5 * dt * k1, t + 0.5 * dt)
    k3 = call_velocity(v, x + 0.5 * dt * k2, t + 0.5 * dt)
    k4 = call_velocity(v, x + dt * k3, t + dt)
    return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


# name -> (step function, velocity evaluations per step)
FIXED_STEP: dict[str, tuple[Callable[[Velocity, Tensor, float, float], Tensor], int]] = {
    "euler": (euler_step, 1),
    "midpoint": (midpoint_step, 2),
    "heun": (heun_step, 2),
    "rk4": (rk4_step, 4),
}
