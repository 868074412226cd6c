"""What the network regresses on a path (METHODS.md section 2).

- ``tangent``: ``v(B(t), t) ~ B'(t)``; multi-step sampling follows the curve.
- ``endpoint``: ``v(B(t), t) ~ (X1 - B(t)) / (1 - t)`` with t clipped to ``t_max`` < 1: one Euler
  step of the remaining time from any point of the curve lands on X1. At t = 0 it is ``X1 - X0``;
  on the linear path it equals the tangent.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from bezkit.paths.path_sample import PathSample

__all__ = ["TARGETS", "TargetKind", "regression_target"]

TargetKind = Literal["tangent", "endpoint"]
TARGETS: tuple[str, ...] = ("tangent", "endpoint")


def regression_target(
    sample: PathSample, kind: TargetKind = "tangent", *, t_max: float = 0.999
) -> Tensor:
    """The velocity the model is trained to output at ``(sample.x_t, sample.t)``."""
    if kind == "tangent":
        return sample.dx_t
    if kind == "endpoint":
        if not 0.0 < t_max < 1.0:
            raise ValueError(f"t_max must lie in (0, 1), got {t_max}")
        remaining = (1.0 - sample.t.clamp(max=t_max)).reshape(-1, *([1] * (sample.x_t.ndim - 1)))
        return (sample.x1 - sample.x_t) / remaining
    raise ValueError(f"unknown target {kind!r}; known targets: {', '.join(TARGETS)}")
