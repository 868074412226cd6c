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

from torch import Tensor

from bezkit.paths.bezier import TARGETS, BezierPath, TargetKind, check_target
from bezkit.paths.path_sample import PathSample

__all__ = ["TARGETS", "TargetKind", "check_target", "regression_target"]


def regression_target(
    sample: PathSample, kind: TargetKind = "tangent", *, grid_steps: int | None = None
) -> Tensor:
    """The velocity the model is trained to output at ``(sample.x_t, sample.t)``, for a sample
    whose path object is not at hand (a figure, a widget): :meth:`BezierPath.target` of the
    order-``len(sample.guides) + 1`` path. Training calls its path's own ``target``.

    ``grid_steps`` is the N of the ``secant`` target's grid (required for it, an error for the
    others)."""
    check_target(kind, grid_steps)
    if kind == "tangent" or sample.guides is None:
        return BezierPath(1).target(sample, kind, grid_steps=grid_steps)
    return BezierPath(len(sample.guides) + 1).target(sample, kind, grid_steps=grid_steps)
