"""Bezier paths of any order between X0 and X1 (METHODS.md section 1).

With control points ``P_0 = X0``, guides ``P_1 .. P_{n-1}`` and ``P_n = X1``:

    B(t)  = sum_{i=0}^{n}   C(n, i)   (1-t)^(n-i)   t^i (P_i)
    B'(t) = n sum_{i=0}^{n-1} C(n-1, i) (1-t)^(n-1-i) t^i (P_{i+1} - P_i)

Order 1 is the straight line of rectified flow, ``X_t = (1-t) X0 + t X1`` with velocity ``X1 - X0``.

On an N-step grid ``t_i = i / N`` the *secant* ``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)`` is the
velocity whose Euler steps land on the curve's grid points (:meth:`BezierPath.secant_velocity`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from bezkit.paths.path_sample import PathSample

__all__ = [
    "GRID_SNAP",
    "TARGETS",
    "BezierPath",
    "LinearPath",
    "TargetKind",
    "bernstein",
    "check_grid_steps",
    "check_target",
    "check_time",
    "next_grid_time",
]

#: Times within this many grid spacings below a grid point count as on it (float grids).
GRID_SNAP = 1e-4

TargetKind = Literal["tangent", "endpoint", "secant"]
#: What a network can regress on a path (METHODS.md section 2; the one tuple every caller uses).
TARGETS: tuple[str, ...] = ("tangent", "endpoint", "secant")


def check_time(t: Tensor, n: int, *, name: str = "t") -> Tensor:
    """Check ``t`` is a finite ``(n,)`` tensor in [0, 1] and return it as float."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({n},), got {type(t).__name__}")
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    if (t < 0).any() or (t > 1).any():
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{float(t.min()):.4g}, {float(t.max()):.4g}]"
        )
    return t


def bernstein(order: int, t: Tensor) -> Tensor:
    """Bernstein weights ``C(n, i) (1-t)^(n-i) t^i`` for i = 0..n, shape ``(n+1, len(t))``."""
    i = torch.arange(order + 1, dtype=t.dtype, device=t.device)[:, None]
    binom = torch.tensor(
        [math.comb(order, k) for k in range(order + 1)], dtype=t.dtype, device=t.device
    )[:, None]
    return binom * (1 - t)[None, :] ** (order - i) * t[None, :] ** i


def check_grid_steps(steps: object) -> int:
    """``steps`` must be the int N >= 1 of an N-step grid ``{0, 1/N, ..., 1}``."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"grid steps N must be an int >= 1, got {steps!r}")
    return steps


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


def next_grid_time(t: Tensor, steps: int) -> Tensor:
    """The end ``(i + 1) / N`` of the grid cell ``[i / N, (i + 1) / N)`` holding each ``t``.

    A ``t`` less than ``GRID_SNAP / N`` below a grid point counts as on it (so a float grid time
    such as ``float32(1/3)`` starts its own cell); ``t = 1`` gives 1 (the last cell's end).
    """
    n = check_grid_steps(steps)
    cell = torch.floor(t.double() * n + GRID_SNAP).clamp(max=n - 1)
    return ((cell + 1) / n).clamp(max=1.0).to(t.dtype)


def _expand(w: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample weights ``(n,)`` to broadcast against ``(n, *d)``."""
    return w.reshape(-1, *([1] * (like.ndim - 1)))


def _sum_in_order(terms: list[Tensor]) -> Tensor:
    """``terms[0] + terms[1] + ...`` left to right (the order ``sum()`` uses, so the same bits)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class BezierPath:
    """A Bezier curve of order ``n >= 1`` from ``X0`` to ``X1`` with ``n - 1`` guide points."""

    def __init__(self, order: int) -> None:
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ValueError(f"Bezier order must be an int >= 1, got {order!r}")
        self.order = order

    @property
    def num_guides(self) -> int:
        """``n - 1``: the guide points between ``X0`` and ``X1`` (0 for the straight line)."""
        return self.order - 1

    def control_points(self, x0: Tensor, x1: Tensor, guides: Sequence[Tensor] = ()) -> list[Tensor]:
        """``[X0, G_1, ..., G_{n-1}, X1]`` after checking shapes."""
        if x0.shape != x1.shape:
            raise ValueError(
                f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        guides = tuple(guides)
        if len(guides) != self.num_guides:
            raise ValueError(
                f"a Bezier path of order {self.order} needs {self.num_guides} guide(s), "
                f"got {len(guides)}"
            )
        for k, g in enumerate(guides):
            if g.shape != x0.shape:
                raise ValueError(
                    f"guide {k + 1} has shape {tuple(g.shape)}, expected {tuple(x0.shape)} like x0"
                )
        return [x0, *guides, x1]

    def point(self, x0: Tensor, x1: Tensor, t: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """``B(t)`` for each pair."""
        pts = self.control_points(x0, x1, guides)
        t = check_time(t, x0.shape[0]).to(x0.dtype)
        w = bernstein(self.order, t)
        return _sum_in_order([_expand(w[i], x0) * p for i, p in enumerate(pts)])

    def tangent(self, x0: Tensor, x1: Tensor, t: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """``B'(t) = n sum_i C(n-1, i) (1-t)^(n-1-i) t^i (P_{i+1} - P_i)``."""
        pts = self.control_points(x0, x1, guides)
        t = check_time(t, x0.shape[0]).to(x0.dtype)
        w = bernstein(self.order - 1, t)
        diffs = [pts[i + 1] - pts[i] for i in range(self.order)]
        return self.order * _sum_in_order([_expand(w[i], x0) * d for i, d in enumerate(diffs)])

    def endpoint_velocity(
        self, x0: Tensor, x1: Tensor, t: Tensor, guides: Sequence[Tensor] = ()
    ) -> Tensor:
        """``(X1 - B(t)) / (1 - t)`` in closed form, exact for every ``t`` in [0, 1] (no division).

        The Bernstein weights sum to 1, so ``X1 - B(t) = sum_{i<n} C(n, i) (1-t)^(n-i) t^i (P_n - P_i)``
        and every term has the factor ``(1 - t)``; dividing it out,

            (X1 - B(t)) / (1 - t) = sum_{i=0}^{n-1} C(n, i) (1-t)^(n-1-i) t^i (P_n - P_i),

        a polynomial in t. At ``t = 0`` it is ``X1 - X0``; at ``t = 1`` only ``i = n - 1`` remains,
        ``n (P_n - P_{n-1}) = B'(1)``. Computed as ``n / (n - i)`` times the order ``n - 1`` weights.
        """
        pts = self.control_points(x0, x1, guides)
        t = check_time(t, x0.shape[0]).to(x0.dtype)
        n = self.order
        w = bernstein(n - 1, t)
        out = _expand(w[0] * 1.0, x0) * (x1 - pts[0])
        for i in range(1, n):
            out = out + _expand(w[i] * (n / (n - i)), x0) * (x1 - pts[i])
        return out

    def secant_velocity(
        self,
        x0: Tensor,
        x1: Tensor,
        t: Tensor,
        guides: Sequence[Tensor] = (),
        *,
        steps: int,
    ) -> Tensor:
        """The secant to the next point of the N-step grid: ``(B(b) - B(t)) / (b - t)``,
        ``b = next_grid_time(t, N)``.

        On the grid, ``t_i = i / N``, it is ``N (B(t_{i+1}) - B(t_i))``, so N Euler steps of it
        from ``X0`` visit ``B(t_1), ..., B(t_N) = X1`` exactly; with N = 1 it is ``X1 - X0``; on
        the linear path it is ``X1 - X0``, the tangent. It is computed with no division as the
        mean of the tangent over the cell,

            (B(b) - B(a)) / (b - a) = int_0^1 B'(a + u (b - a)) du
                                    = sum_q w_q B'(a + u_q (b - a)),

        by Gauss-Legendre quadrature with ``ceil(n / 2)`` nodes ``u_q`` in [0, 1] (exact for ``B'``,
        a polynomial of degree ``n - 1``), so it stays exact when ``b - t`` is small and equals
        ``B'(1)`` at ``t = 1``.
        """
        self.control_points(x0, x1, guides)
        t = check_time(t, x0.shape[0]).to(x0.dtype)
        b = next_grid_time(t, steps)
        nodes, weights = np.polynomial.legendre.leggauss(max(1, (self.order + 1) // 2))
        out = torch.zeros_like(x0)
        for u, w in zip((nodes + 1) / 2, weights / 2, strict=True):
            at = (t + float(u) * (b - t)).clamp(0.0, 1.0)
            out = out + float(w) * self.tangent(x0, x1, at, guides)
        return out

    def sample(
        self, x0: Tensor, x1: Tensor, t: Tensor, guides: Sequence[Tensor] = ()
    ) -> PathSample:
        """The point and the tangent at ``t``, as a :class:`PathSample` (with the guides)."""
        return PathSample(
            x0=x0,
            x1=x1,
            t=t,
            x_t=self.point(x0, x1, t, guides),
            dx_t=self.tangent(x0, x1, t, guides),
            guides=tuple(guides),
        )

    def target(
        self, sample: PathSample, kind: TargetKind = "tangent", *, grid_steps: int | None = None
    ) -> Tensor:
        """What the network regresses at ``(sample.x_t, sample.t)`` on this path (METHODS.md
        section 2): the ``tangent`` ``B'(t)``, the ``endpoint`` target ``(X1 - B(t)) / (1 - t)``
        (:meth:`endpoint_velocity`, exact for every t) or the ``secant`` on the grid of
        ``grid_steps`` N (:meth:`secant_velocity`; ``grid_steps`` is required for it and an error
        for the others). The endpoint and secant targets need the sample's guides."""
        check_target(kind, grid_steps)
        if kind == "tangent":
            return sample.dx_t
        if sample.guides is None:
            raise ValueError(
                f"the {kind} target needs the curve's guide points: build the sample with "
                "BezierPath.sample (PathSample.guides is None)"
            )
        if len(sample.guides) != self.num_guides:
            raise ValueError(
                f"a sample with {len(sample.guides)} guide(s) is not on this order-{self.order} "
                f"path ({self.num_guides} guide(s))"
            )
        if kind == "endpoint":
            return self.endpoint_velocity(sample.x0, sample.x1, sample.t, sample.guides)
        steps = check_grid_steps(grid_steps)
        return self.secant_velocity(sample.x0, sample.x1, sample.t, sample.guides, steps=steps)

    def __repr__(self) -> str:
        return f"BezierPath(order={self.order})"


class LinearPath(BezierPath):
    """The straight line ``X_t = (1-t) X0 + t X1``, velocity ``X1 - X0`` (order-1 Bezier)."""

    def __init__(self) -> None:
        super().__init__(1)

    def __repr__(self) -> str:
        return "LinearPath()"
