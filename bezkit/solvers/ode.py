"""``solve_ode``: integrate a velocity field forwards (noise -> data) or backwards in time.

``dZ/dt = v(Z, t)``, ``Z(t_start) = x``. Fixed-step methods use ``steps`` equal steps on the grid
``t_i = t_start + i (t_end - t_start) / steps``; ``dopri5`` chooses its own steps. Every call returns
the number of velocity evaluations (NFE) it made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bezkit.solvers.adaptive import dopri5
from bezkit.solvers.fixed_step import FIXED_STEP, Velocity

__all__ = ["SOLVERS", "ODESolution", "solve_ode"]

SOLVERS: tuple[str, ...] = (*FIXED_STEP, "dopri5")


@dataclass(frozen=True)
class ODESolution:
    """The result of a solve.

    Attributes:
        x: the state at ``t_end``, ``(n, *d)``.
        times: the times of the recorded states (the step grid), ``(m,)``.
        trajectory: ``(m, n, *d)`` states at ``times`` if ``record=True`` else ``None``.
        nfe: number of velocity evaluations.
    """

    x: Tensor
    times: Tensor
    trajectory: Tensor | None
    nfe: int

    def recorded_trajectory(self) -> Tensor:
        """The ``(m, n, *d)`` states at ``times``; a ``ValueError`` if the solve did not record
        them (``solve_ode(..., record=True)`` does)."""
        if self.trajectory is None:
            raise ValueError("this solve kept no trajectory: call solve_ode(..., record=True)")
        return self.trajectory


def _check_inputs(
    model: Velocity, x: Tensor, method: str, steps: int, t_start: float, t_end: float
) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        got = (
            f"{x.dtype} tensor of shape {tuple(x.shape)}"
            if isinstance(x, Tensor)
            else type(x).__name__
        )
        raise ValueError(f"x must be a floating tensor of shape (n, *data_shape), got {got}")
    if isinstance(model, nn.Module):
        dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
        if dtypes and x.dtype not in dtypes:
            want = ", ".join(sorted(str(d) for d in dtypes))
            raise ValueError(
                f"x is {x.dtype} but the model's weights are {want}: convert one of them "
                "(e.g. x.float() or model.double())"
            )
    if not torch.isfinite(x).all():
        raise ValueError("initial state x contains NaN or inf")
    if method not in SOLVERS:
        raise ValueError(f"unknown solver {method!r}; known solvers: {', '.join(SOLVERS)}")
    if method != "dopri5" and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    for name, val in (("t_start", t_start), ("t_end", t_end)):
        if not 0.0 <= val <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {val}")


def _checked(model: Velocity) -> Velocity:
    """``model`` with its output checked: a floating tensor of the shape of ``x``. Without this a
    (1, d) or (d,) or scalar output would broadcast silently into a wrong solution."""

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        out = model(x, t)
        if not isinstance(out, Tensor):
            raise ValueError(
                f"the velocity model returned {type(out).__name__}; it must return a tensor of "
                f"shape {tuple(x.shape)} (the shape of x)"
            )
        if out.shape != x.shape:
            raise ValueError(
                f"the velocity model returned shape {tuple(out.shape)} for x of shape "
                f"{tuple(x.shape)}; it must return one velocity per point, the shape of x"
            )
        if not out.is_floating_point():
            raise ValueError(f"the velocity model returned dtype {out.dtype}; expected {x.dtype}")
        return out

    return velocity


@torch.no_grad()
def solve_ode(
    model: Velocity,
    x: Tensor,
    *,
    method: str = "euler",
    steps: int = 100,
    t_start: float = 0.0,
    t_end: float = 1.0,
    record: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> ODESolution:
    """Integrate ``dZ/dt = model(Z, t)`` from ``t_start`` to ``t_end`` starting at ``x``.

    Set ``t_start=1.0, t_end=0.0`` for the reverse flow (data -> noise). ``record=True`` keeps
    every state on the grid (memory ``steps * x.numel()``). A model whose output is not a floating
    tensor of the shape of ``x``, or whose weights have another dtype than ``x``, is a
    ``ValueError`` naming the expected shape and dtype.
    """
    _check_inputs(model, x, method, steps, t_start, t_end)
    model = _checked(model)
    if method == "dopri5":
        res = dopri5(model, x, t_start, t_end, atol=atol, rtol=rtol, record=record)
        traj = torch.stack(res.states) if record else None
        return ODESolution(x=res.x, times=torch.tensor(res.times), trajectory=traj, nfe=res.nfe)
    step, cost = FIXED_STEP[method]
    grid = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    states = [x] if record else None
    for i in range(steps):
        t, dt = float(grid[i]), float(grid[i + 1] - grid[i])
        x = step(model, x, t, dt)
        if states is not None:
            states.append(x)
    traj = torch.stack(states) if states is not None else None
    return ODESolution(x=x, times=grid.float(), trajectory=traj, nfe=steps * cost)
