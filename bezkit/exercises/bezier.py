"""Checks for lesson 03 (Bezier curves): the tangent, the endpoint target, degree elevation.

The student writes functions of one curve given by its control points ``points`` (an
``(n + 1, 2)`` tensor ``P_0 = X0, ..., P_n = X1``) and a float ``t``:

- ``bezier_tangent(points, t)``: ``B'(t) = n sum_i C(n-1, i) (1-t)^(n-1-i) t^i (P_{i+1} - P_i)``;
- ``endpoint_target(points, t)``: ``(X1 - B(t)) / (1 - t)`` for ``t < 1``;
- ``degree_elevate(points)``: ``Q_0 = P_0``, ``Q_i = i/(n+1) P_{i-1} + (1 - i/(n+1)) P_i``,
  ``Q_{n+1} = P_n``.

Each check compares with :class:`bezkit.paths.BezierPath` on a quadratic and a cubic at several
times and names the usual mistakes (a missing factor ``n``, a flipped sign, the point instead of
its derivative, the chord instead of the endpoint target, swapped weights).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from bezkit.exercises.result import CheckResult, as_array, attempt, fmt
from bezkit.paths import BezierPath
from bezkit.paths.geometry import BezierGeometry, bezier_geometry
from bezkit.paths.geometry import degree_elevate as elevate

__all__ = [
    "CHECK_CURVES",
    "bezier_point",
    "bezier_tangent",
    "check_bezier_tangent",
    "check_degree_elevation",
    "check_endpoint_target",
    "check_interpolated_guide",
    "degree_elevate",
    "endpoint_target",
    "interpolated_guide",
]

#: The curves every check uses: a quadratic and a cubic with guides off the chord.
CHECK_CURVES: tuple[tuple[tuple[float, float], ...], ...] = (
    ((-2.0, -1.0), (-1.0, 2.5), (2.0, 1.0)),
    ((-2.0, -1.0), (-1.5, 2.5), (1.0, -2.5), (2.0, 1.0)),
)
_TIMES = (0.0, 0.3, 0.75)


def _geometry(points: Tensor, t: float) -> BezierGeometry:
    p = torch.as_tensor(points, dtype=torch.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ValueError(f"points must be (n + 1, d) with n >= 1, got shape {tuple(p.shape)}")
    return bezier_geometry(p, t, n_points=2)


def bezier_point(points: Tensor, t: float) -> Tensor:
    """The reference ``B(t)`` of one curve (``(d,)``)."""
    return torch.from_numpy(_geometry(points, t).point)


def bezier_tangent(points: Tensor, t: float) -> Tensor:
    """The reference ``B'(t)`` of one curve (``(d,)``)."""
    return torch.from_numpy(_geometry(points, t).tangent)


def endpoint_target(points: Tensor, t: float) -> Tensor:
    """The reference endpoint target ``(X1 - B(t)) / (1 - t)`` (``t < 1``)."""
    if not t < 1:
        raise ValueError(f"the endpoint target needs t < 1, got {t}")
    return torch.from_numpy(_geometry(points, t).endpoint_velocity)


def degree_elevate(points: Tensor) -> Tensor:
    """The reference degree elevation: the same curve with ``n + 2`` control points
    (:func:`bezkit.paths.bezier_geometry.degree_elevate`)."""
    return torch.from_numpy(elevate(torch.as_tensor(points, dtype=torch.float64)))


def _close(a: np.ndarray, b: Tensor | np.ndarray) -> bool:
    return bool(np.allclose(a, np.asarray(b, dtype=np.float64), atol=1e-6, rtol=1e-6))


def _check_at_times(
    name: str,
    fn: Callable[[Tensor, float], Tensor],
    reference: Callable[[Tensor, float], Tensor],
    what: str,
    hint: Callable[[np.ndarray, Tensor, Tensor, float], str],
) -> CheckResult | None:
    """``fn(points, t)`` against ``reference`` on every check curve at every check time: the
    failure at the first mismatch (``your <what> the order-n curve at t = ... is ...`` and
    ``hint(value, points, want, t)``), or ``None`` when every value matches."""
    for curve in CHECK_CURVES:
        points = torch.tensor(curve, dtype=torch.float64)
        n = len(curve) - 1
        for t in _TIMES:
            got = attempt(name, fn, points.clone(), t)
            if isinstance(got, CheckResult):
                return got
            value = as_array(got, (2,))
            if isinstance(value, str):
                return CheckResult.fail(name, f"For the order-{n} curve at t = {t}, {value}.")
            want = reference(points, t)
            if not _close(value, want):
                where = f"your {what} the order-{n} curve at t = {t} is {fmt(value)}"
                explain = hint(value, points, want, t)
                return CheckResult.fail(name, f"{where} but expected {fmt(want)}{explain}.")
    return None


def _tangent_hint(value: np.ndarray, points: Tensor, want: Tensor, t: float) -> str:
    n = points.shape[0] - 1
    if _close(value, want / n):
        return f"; it is 1/{n} of the right value: did you forget the factor n = {n}?"
    if _close(value, -want):
        return "; the sign is flipped: the differences are P_{i+1} - P_i"
    if _close(value, bezier_point(points, t)):
        return "; that is the point B(t), not its derivative"
    if _close(value, points[-1] - points[0]):
        return "; that is the chord X1 - X0, the tangent of the straight line only"
    if t == 0 and _close(value, points[1] - points[0]):
        return f"; B'(0) = n (P_1 - P_0): did you forget the factor n = {n}?"
    return ""


def _endpoint_hint(value: np.ndarray, points: Tensor, want: Tensor, t: float) -> str:
    if _close(value, points[-1] - bezier_point(points, t)):
        return "; that is X1 - B(t): divide by the remaining time 1 - t"
    if _close(value, -want):
        return "; the sign is flipped: it points from B(t) to X1"
    if _close(value, points[-1] - points[0]):
        return "; that is the chord X1 - X0, which equals the target only at t = 0"
    if _close(value, bezier_tangent(points, t)):
        return "; that is the tangent B'(t), the other target"
    return ""


def check_bezier_tangent(fn: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """Check ``fn(points, t) -> B'(t)`` on a quadratic and a cubic at t = 0, 0.3, 0.75."""
    name = "3.1 Bezier tangent"
    failed = _check_at_times(name, fn, bezier_tangent, "B'(t) of", _tangent_hint)
    if failed is not None:
        return failed
    return CheckResult.ok(name, "B'(t) matches on a quadratic and a cubic at t = 0, 0.3, 0.75.")


def check_endpoint_target(fn: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """Check ``fn(points, t) -> (X1 - B(t)) / (1 - t)`` on a quadratic and a cubic."""
    name = "3.2 endpoint target"
    failed = _check_at_times(name, fn, endpoint_target, "target for", _endpoint_hint)
    if failed is not None:
        return failed
    return CheckResult.ok(
        name, "(X1 - B(t)) / (1 - t) matches; one Euler step of 1 - t from B(t) lands on X1."
    )


def check_degree_elevation(fn: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``fn(points) -> (n + 2, d)`` control points of the same curve."""
    name = "3.3 degree elevation"
    for curve in CHECK_CURVES:
        points = torch.tensor(curve, dtype=torch.float64)
        n = len(curve) - 1
        got = attempt(name, fn, points.clone())
        if isinstance(got, CheckResult):
            return got
        value = as_array(got, (n + 2, 2))
        if isinstance(value, str):
            return CheckResult.fail(name, f"For the order-{n} curve {value}.")
        want = degree_elevate(points)
        if _close(value, want):
            continue
        hint = ""
        if not (_close(value[0], points[0]) and _close(value[-1], points[-1])):
            hint = " The first and last control points must stay X0 and X1."
        else:
            w = torch.arange(1, n + 1, dtype=torch.float64)[:, None] / (n + 1)
            swapped = (1 - w) * points[:-1] + w * points[1:]
            if _close(value[1:-1], swapped):
                hint = " The weights are swapped: Q_i = i/(n+1) P_{i-1} + (1 - i/(n+1)) P_i."
        return CheckResult.fail(
            name, f"For the order-{n} curve you returned {fmt(value)}, expected {fmt(want)}.{hint}"
        )
    return CheckResult.ok(name, "the elevated control points describe the same curves.")


def interpolated_guide(z: Tensor, s: float, x0: Tensor, x1: Tensor) -> Tensor:
    """The reference quadratic guide through ``Z`` at ``s``: ``(Z - (1-s)^2 X0 - s^2 X1) / (2s(1-s))``."""
    if not 0 < s < 1:
        raise ValueError(f"the guide time s must be in (0, 1), got {s}")
    return (z - (1 - s) ** 2 * x0 - s**2 * x1) / (2 * s * (1 - s))


def check_interpolated_guide(fn: Callable[[Tensor, float, Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``fn(z, s, x0, x1) -> G`` (batches ``(n, 2)``): the quadratic then passes through ``z`` at ``s``."""
    name = "4.1 interpolated guide"
    g = torch.Generator().manual_seed(0)
    x0, x1, z = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(3))
    for s in (0.5, 0.25):
        got = attempt(name, fn, z.clone(), s, x0.clone(), x1.clone())
        if isinstance(got, CheckResult):
            return got
        value = as_array(got, (5, 2))
        if isinstance(value, str):
            return CheckResult.fail(name, f"at s = {s} {value} (one guide per pair).")
        want = interpolated_guide(z, s, x0, x1)
        if _close(value, want):
            continue
        guide = torch.as_tensor(value)
        through = BezierPath(2).point(x0, x1, torch.full((5,), s, dtype=torch.float64), (guide,))
        hint = ""
        if _close(value, z):
            hint = " That is the `control` placement (G = Z): solve B(s) = Z for G instead."
        elif _close(value, want * 2):
            hint = " It is twice the right guide: B(t) has the weight 2 s (1 - s) on G."
        elif _close(value, want * 2 * s * (1 - s)):
            hint = " Divide by the guide's Bernstein weight 2 s (1 - s)."
        return CheckResult.fail(
            name,
            f"at s = {s} your guide of pair 0 is {fmt(value[0])}, expected {fmt(want[0])}; with "
            f"it B(s) = {fmt(through[0])} instead of Z = {fmt(z[0])}.{hint}",
        )
    return CheckResult.ok(name, "the curves pass through Z at s = 0.5 and s = 0.25.")
