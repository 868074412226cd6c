"""What the network regresses on a path (METHODS.md section 2).

- ``tangent``: ``v(B(t), t) ~ B'(t)``; multi-step sampling follows the curve.
- ``endpoint``: ``v(B(t), t) ~ (X1 - B(t)) / (1 - t)``: one Euler step of the remaining time from any
  point of the curve lands on X1. ``X1 - B(t)`` has the exact factor ``(1 - t)`` for every Bezier
  curve, so the target is computed in closed form with no division
  (:meth:`bezkit.paths.BezierPath.endpoint_velocity`): exact for every t in [0, 1], ``X1 - X0`` at
  t = 0, ``B'(1)`` at t = 1, and equal to the tangent on the linear path.
- ``secant`` (grid-consistent, for an N-step sampler): on the grid ``t_i = i / N``,
  ``v(B(t_i), t_i) ~ (B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)``, so N Euler steps of the exact
  field trace ``B(t_0), B(t_1), ..., B(1)`` and every query stays on the training distribution
  (:meth:`bezkit.paths.BezierPath.secant_velocity`; off the grid, the secant to the next grid
  point). N = 1: ``X1 - X0``; on the linear path: the tangent.
"""

from __future__ import annotations

import warnings
from typing import Literal

from torch import Tensor

from bezkit.paths.bezier import BezierPath, check_grid_steps
from bezkit.paths.path_sample import PathSample

__all__ = ["TARGETS", "TargetKind", "check_target", "regression_target"]

TargetKind = Literal["tangent", "endpoint", "secant"]
TARGETS: tuple[str, ...] = ("tangent", "endpoint", "secant")


def check_target(kind: str, grid_steps: int | None) -> None:
    """A known target, with ``grid_steps`` (the N of the secant's grid) given for ``secant`` and
    only for it (a clear error rather than an option silently ignored)."""
    if kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; known targets: {', '.join(TARGETS)}")
    if kind == "secant":
        if grid_steps is None:
            raise ValueError(
                "the secant target needs grid_steps=N, the step count of the sampler's grid"
            )
        check_grid_steps(grid_steps)
    elif grid_steps is not None:
        raise ValueError(f"grid_steps applies to the secant target only, not to {kind!r}")


def regression_target(
    sample: PathSample,
    kind: TargetKind = "tangent",
    *,
    grid_steps: int | None = None,
    t_max: float | None = None,
) -> Tensor:
    """The velocity the model is trained to output at ``(sample.x_t, sample.t)``.

    ``grid_steps`` is the N of the ``secant`` target's grid (required for it, an error for the
    others). ``t_max`` is deprecated and has no effect: the endpoint target used to clip t at
    ``t_max`` to avoid dividing by ``1 - t``; it is now exact up to and including t = 1.
    """
    if t_max is not None:
        warnings.warn(
            "regression_target(t_max=...) is deprecated and ignored: the endpoint target is now "
            "exact for every t in [0, 1]",
            DeprecationWarning,
            stacklevel=2,
        )
    check_target(kind, grid_steps)
    if kind == "tangent":
        return sample.dx_t
    if sample.guides is None:
        raise ValueError(
            f"the {kind} target needs the curve's guide points: build the sample with "
            "BezierPath.sample (PathSample.guides is None)"
        )
    path = BezierPath(len(sample.guides) + 1)
    if kind == "endpoint":
        return path.endpoint_velocity(sample.x0, sample.x1, sample.t, sample.guides)
    steps = check_grid_steps(grid_steps)
    return path.secant_velocity(sample.x0, sample.x1, sample.t, sample.guides, steps=steps)
