"""Adaptive Dormand-Prince 5(4) for ``dx/dt = v(x, t)`` (the "RK45" / "dopri5" of the papers).

Seven stages; the 5th-order solution advances the state, the embedded 4th-order one estimates the
local error ``err = max_i |x5 - x4| / (atol + rtol max(|x|, |x5|))`` (RMS norm over the batch). A step
is accepted when ``err <= 1`` and the next step size is ``h * clip(0.9 err^(-1/5), 0.2, 10)``.
The last stage of an accepted step is the first of the next one (FSAL), so an accepted step costs
six velocity evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bezkit.solvers.fixed_step import Velocity, call_velocity

__all__ = ["Dopri5Result", "dopri5"]

# Butcher tableau of Dormand & Prince (1980).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


@dataclass
class Dopri5Result:
    """An adaptive solve: the state ``x`` at ``t_end``; ``times`` and ``states`` of the accepted
    steps (with ``record``; else ``times == [t_start, t_end]`` and no states); ``nfe`` velocity
    evaluations; ``accepted`` and ``rejected`` steps. A step is accepted when the scaled RMS error
    ``sqrt(mean(((x5 - x4) / (atol + rtol max(|x|, |x5|)))^2)) <= 1``."""

    x: Tensor
    times: list[float]
    states: list[Tensor]
    nfe: int
    accepted: int
    rejected: int


def dopri5(
    v: Velocity,
    x: Tensor,
    t_start: float,
    t_end: float,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    first_step: float | None = None,
    max_steps: int = 10_000,
    record: bool = False,
) -> Dopri5Result:
    """Integrate from ``t_start`` to ``t_end`` (either direction) with adaptive steps."""
    direction = 1.0 if t_end >= t_start else -1.0
    span = abs(t_end - t_start)
    t = t_start
    h = min(first_step or 0.01 * span, span) if span > 0 else 0.0
    k1 = call_velocity(v, x, t)
    nfe, accepted, rejected = 1, 0, 0
    times, states = [t], [x] if record else []
    while direction * (t_end - t) > 1e-12 * max(1.0, span):
        if accepted + rejected >= max_steps:
            raise RuntimeError(f"dopri5 did not reach t={t_end} in {max_steps} steps (t={t:.6g})")
        h = min(h, abs(t_end - t))
        dt = direction * h
        ks = [k1]
        for stage in range(1, 7):
            xs = x + dt * sum(a * k for a, k in zip(_A[stage], ks, strict=False) if a != 0.0)
            ks.append(call_velocity(v, xs, t + _C[stage] * dt))
        nfe += 6
        x5 = x + dt * sum(b * k for b, k in zip(_B5, ks, strict=True) if b != 0.0)
        x4 = x + dt * sum(b * k for b, k in zip(_B4, ks, strict=True) if b != 0.0)
        scale = atol + rtol * torch.maximum(x.abs(), x5.abs())
        err = float(torch.sqrt(torch.mean(((x5 - x4) / scale) ** 2)))
        if err <= 1.0:
            t, x, k1 = t + dt, x5, ks[6]
            accepted += 1
            if record:
                times.append(t)
                states.append(x)
        else:
            rejected += 1
        factor = 10.0 if err == 0.0 else min(10.0, max(0.2, 0.9 * err ** (-0.2)))
        h = h * factor
    if not record:
        times, states = [t_start, t], []
    return Dopri5Result(
        x=x, times=times, states=states, nfe=nfe, accepted=accepted, rejected=rejected
    )
