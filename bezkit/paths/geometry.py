"""The geometry of one 2D Bezier curve, as a figure shows it: the curve, a point ``B(t)``, the
tangent ``B'(t)``, the endpoint target ``(X1 - B(t)) / (1 - t)``, and degree elevation.

Computed with :class:`bezkit.paths.BezierPath` and its ``target`` method, the code
that builds training targets, so what a lesson draws is what a student is trained on. Used by
:func:`bezkit.plot.plot_bezier` and :func:`bezkit.widgets.bezier_widget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bezkit.arrays import as_points2d, to_numpy
from bezkit.paths.bezier import BezierPath

__all__ = ["BezierGeometry", "bezier_geometry", "degree_elevate"]


@dataclass(frozen=True)
class BezierGeometry:
    """Everything a figure of one Bezier curve at time ``t`` shows (numpy, float64).

    Attributes:
        control_points: ``(order+1, 2)``, ``P_0 = X0 .. P_n = X1``.
        curve: ``(n_points, 2)`` samples of ``B`` on a uniform grid of [0, 1].
        t: the time of the marked point.
        point: ``B(t)``.
        tangent: ``B'(t)``, the velocity the ``tangent`` target regresses.
        endpoint_velocity: ``(X1 - B(t)) / (1 - t)``, the ``endpoint``
            target.
    """

    control_points: np.ndarray
    curve: np.ndarray
    t: float
    point: np.ndarray
    tangent: np.ndarray
    endpoint_velocity: np.ndarray

    @property
    def order(self) -> int:
        """``n``: one less than the number of control points."""
        return int(self.control_points.shape[0] - 1)


def bezier_geometry(control_points: Any, t: float = 0.5, *, n_points: int = 201) -> BezierGeometry:
    """The curve, the point, the tangent and the endpoint target of one 2D Bezier curve.

    Computed with :class:`bezkit.paths.BezierPath` and its :meth:`~BezierPath.target`, the same
    code that builds training targets. ``t`` is clipped into [0, 1].
    """
    cp = as_points2d(control_points, "control_points")
    if cp.shape[0] < 2:
        raise ValueError("a Bezier curve needs at least 2 control points (X0 and X1)")
    path = BezierPath(cp.shape[0] - 1)
    pts = torch.as_tensor(cp)
    x0, x1, guides = pts[:1], pts[-1:], tuple(p[None] for p in pts[1:-1])
    grid = torch.linspace(0.0, 1.0, max(2, int(n_points)), dtype=torch.float64)
    m = grid.shape[0]
    curve = path.point(
        x0.expand(m, 2), x1.expand(m, 2), grid, tuple(g.expand(m, 2) for g in guides)
    )
    t = float(min(1.0, max(0.0, float(t))))
    tt = torch.tensor([t], dtype=torch.float64)
    sample = path.sample(x0, x1, tt, guides)
    endpoint = path.target(sample, "endpoint")
    return BezierGeometry(
        control_points=cp,
        curve=curve.numpy(),
        t=t,
        point=sample.x_t[0].numpy(),
        tangent=sample.dx_t[0].numpy(),
        endpoint_velocity=endpoint[0].numpy(),
    )


def degree_elevate(control_points: Any) -> np.ndarray:
    """The ``order + 2`` control points of the *same* curve written with one degree more:

    ``Q_0 = P_0``, ``Q_i = i/(n+1) P_{i-1} + (1 - i/(n+1)) P_i`` (i = 1..n), ``Q_{n+1} = P_n``.
    Elevating the line ``[X0, X1]`` gives the quadratic with the midpoint guide ``(X0 + X1) / 2``.
    """
    p = to_numpy(control_points)
    n = p.shape[0] - 1
    q = [p[0]]
    for i in range(1, n + 1):
        a = i / (n + 1)
        q.append(a * p[i - 1] + (1 - a) * p[i])
    q.append(p[n])
    return np.stack(q)
