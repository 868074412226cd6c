"""What the network regresses on a path (METHODS.md section 2).

- ``tangent``: ``v(B(t), t) ~ B'(t)``; multi-step sampling follows the curve.
- ``endpoint``: ``v(B(t), t) ~ (X1 - B(t)) / (1 - t)``: one Euler step of the remaining time from any
  point of the curve lands on X1. ``X1 - B(t)`` has the exact factor ``(1 - t)`` for every Bezier
  curve, so the target is computed in closed form with no division
  (:meth:`bezkit.paths.BezierPath.endpoint_velocity`): exact for every t in [0, 1], ``X1 - X0`` at
  t = 0, ``B'(1)`` at t = 1, and equal to the tangent on the linear path.
"""

from __future__ import annotations

import warnings
from typing import Literal

from torch import Tensor

from bezkit.paths.bezier import BezierPath
from bezkit.paths.path_sample import PathSample

__all__ = ["TARGETS", "TargetKind", "regression_target"]

TargetKind = Literal["tangent", "endpoint"]
TARGETS: tuple[str, ...] = ("tangent", "endpoint")


def regression_target(
    sample: PathSample, kind: TargetKind = "tangent", *, t_max: float | None = None
) -> Tensor:
    """The velocity the model is trained to output at ``(sample.x_t, sample.t)``.

    ``t_max`` is deprecated and has no effect: the endpoint target used to clip t at ``t_max`` to
    avoid dividing by ``1 - t``; it is now exact up to and including t = 1.
    """
    if t_max is not None:
        warnings.warn(
            "regression_target(t_max=...) is deprecated and ignored: the endpoint target is now "
            "exact for every t in [0, 1]",
            DeprecationWarning,
            stacklevel=2,
        )
    if kind == "tangent":
        return sample.dx_t
    if kind == "endpoint":
        if sample.guides is None:
            raise ValueError(
                "the endpoint target needs the curve's guide points: build the sample with "
                "BezierPath.sample (PathSample.guides is None)"
            )
        path = BezierPath(len(sample.guides) + 1)
        return path.endpoint_velocity(sample.x0, sample.x1, sample.t, sample.guides)
    raise ValueError(f"unknown target {kind!r}; known targets: {', '.join(TARGETS)}")
