"""Crossings of 2D trajectories and of a coupling's straight segments (METHODS.md section 5).

Two segments ``p1 -> q1`` and ``p2 -> q2`` cross properly when each one's end points lie strictly on
opposite sides of the other's line:

    orient(a, b, c) = (b - a) x (c - a)   (the z of the 2D cross product)
    cross  <=>  orient(p1,q1,p2) * orient(p1,q1,q2) < 0  and  orient(p2,q2,p1) * orient(p2,q2,q1) < 0

Trajectories are polylines on the solver grid. Testing every segment of every trajectory against every
other is ``(m T)^2`` tests; instead the polylines are cut into chunks of a few segments, chunks whose
bounding boxes do not overlap are discarded in one vectorised test, and only the surviving chunk pairs
are tested segment by segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bezkit.arrays import as_points2d

__all__ = [
    "CrossingStats",
    "SegmentCrossings",
    "coupling_crossings",
    "crossing_mask",
    "segment_crossings",
    "segments_cross",
    "trajectory_crossings",
]


@dataclass(frozen=True)
class CrossingStats:
    """``pairs``: number of crossing pairs among ``m`` curves; ``fraction``: ``pairs / C(m, 2)``;
    ``per_trajectory``: mean number of other curves each one crosses, ``2 pairs / m``."""

    pairs: int
    m: int
    fraction: float
    per_trajectory: float


def _stats(pairs: int, m: int) -> CrossingStats:
    total = m * (m - 1) // 2
    return CrossingStats(
        pairs=pairs,
        m=m,
        fraction=pairs / total if total else 0.0,
        per_trajectory=2.0 * pairs / m if m else 0.0,
    )


def _orient(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )


def segments_cross(p1: Tensor, q1: Tensor, p2: Tensor, q2: Tensor) -> Tensor:
    """Elementwise (broadcasting) proper-crossing test of segments ``p1q1`` and ``p2q2``."""
    d1 = _orient(p1, q1, p2) * _orient(p1, q1, q2)
    d2 = _orient(p2, q2, p1) * _orient(p2, q2, q1)
    return (d1 < 0) & (d2 < 0)


def _check_2d(x: Tensor, name: str, ndim: int) -> None:
    if x.ndim != ndim or x.shape[-1] != 2:
        raise ValueError(
            f"{name} must be 2D points with {ndim} dims (..., 2), got {tuple(x.shape)}"
        )


def coupling_crossings(x0: Tensor, x1: Tensor) -> CrossingStats:
    """How many pairs of straight segments ``X0_i -> X1_i`` cross."""
    _check_2d(x0, "x0", 2)
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape, got {tuple(x0.shape)}, {tuple(x1.shape)}"
        )
    x0, x1 = x0.double(), x1.double()
    m = x0.shape[0]
    count = 0
    for i in range(0, m, 512):  # rows in blocks to bound memory at m^2 / block
        c = segments_cross(x0[i : i + 512, None], x1[i : i + 512, None], x0[None], x1[None])
        rows = torch.arange(i, min(i + 512, m))[:, None]
        count += int((c & (rows < torch.arange(m)[None])).sum())
    return _stats(count, m)


def trajectory_crossings(trajectories: Tensor, *, chunk: int = 5) -> CrossingStats:
    """Crossing pairs among ``m`` polylines ``trajectories`` of shape ``(steps+1, m, 2)``."""
    _check_2d(trajectories, "trajectories", 3)
    traj = trajectories.double().transpose(0, 1)  # (m, T+1, 2)
    m, npts, _ = traj.shape
    nseg = npts - 1
    if nseg < 1 or m < 2:
        return _stats(0, m)
    pad = (-nseg) % chunk  # repeat the last point: zero-length segments never cross
    if pad:
        traj = torch.cat([traj, traj[:, -1:].expand(m, pad, 2)], dim=1)
    starts = traj[:, :-1].reshape(m, -1, chunk, 2)  # (m, C, L, 2)
    ends = traj[:, 1:].reshape(m, -1, chunk, 2)
    nchunk = starts.shape[1]
    lo = torch.minimum(starts, ends).amin(dim=2).reshape(-1, 2)  # (m*C, 2)
    hi = torch.maximum(starts, ends).amax(dim=2).reshape(-1, 2)
    owner = torch.arange(m).repeat_interleave(nchunk)
    crossing = torch.zeros(m, m, dtype=torch.bool)
    seg_p, seg_q = starts.reshape(-1, chunk, 2), ends.reshape(-1, chunk, 2)
    block = 1024
    for i in range(0, lo.shape[0], block):
        overlap = (lo[i : i + block, None] <= hi[None]).all(-1) & (
            hi[i : i + block, None] >= lo[None]
        ).all(-1)
        overlap &= owner[i : i + block, None] < owner[None]
        a, b = torch.nonzero(overlap, as_tuple=True)
        a = a + i
        for j in range(0, a.numel(), 65536):
            aa, bb = a[j : j + 65536], b[j : j + 65536]
            hit = (
                segments_cross(
                    seg_p[aa][:, :, None],
                    seg_q[aa][:, :, None],
                    seg_p[bb][:, None],
                    seg_q[bb][:, None],
                )
                .flatten(1)
                .any(1)
            )
            crossing[owner[aa[hit]], owner[bb[hit]]] = True
    return _stats(int(crossing.sum()), m)


def _segment_pair(x0: Any, x1: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(as_points2d(x0, "x0"))
    b = torch.as_tensor(as_points2d(x1, "x1"))
    if a.shape != b.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    return a, b


def crossing_mask(x0: Any, x1: Any) -> np.ndarray:
    """For each straight segment ``x0[i] -> x1[i]``: does it properly cross any other one?

    The same orientation test as :func:`bezkit.metrics.coupling_crossings`, kept per segment (an
    ``(m, m)`` table, so use it on the few hundred segments a figure shows).
    """
    a, b = _segment_pair(x0, x1)
    table = segments_cross(a[:, None], b[:, None], a[None], b[None])
    return table.any(dim=1).numpy()


@dataclass(frozen=True)
class SegmentCrossings:
    """Every crossing pair ``i < j`` of straight segments ``X0 -> X1`` and *when* each passes it.

    Segment ``i`` is the linear path ``(1 - t) X0_i + t X1_i``; it reaches the crossing point at
    ``t_i``, segment ``j`` at ``t_j``. Two linear paths only compete for the velocity at a point
    when they are there at the same time, so ``|t_i - t_j|`` tells a harmful crossing (small) from
    a harmless one (large). Arrays have one entry per crossing pair.
    """

    i: np.ndarray
    j: np.ndarray
    point: np.ndarray  # (pairs, 2)
    t_i: np.ndarray
    t_j: np.ndarray

    @property
    def time_gap(self) -> np.ndarray:
        """``|t_i - t_j|`` per crossing pair: how far apart in time the two paths pass the point."""
        return np.abs(self.t_i - self.t_j)

    def __len__(self) -> int:
        return int(self.i.shape[0])


def segment_crossings(x0: Any, x1: Any) -> SegmentCrossings:
    """The crossing pairs of the segments ``x0[k] -> x1[k]`` with their crossing times.

    Solving ``X0_i + t_i (X1_i - X0_i) = X0_j + t_j (X1_j - X0_j)`` for the pairs that
    :func:`bezkit.metrics.segments_cross` finds. Under the exact OT coupling for the squared cost
    no two segments are at the same point at the same time (``t_i != t_j``), although nearly
    parallel ones may still cross at different times.
    """
    a, b = _segment_pair(x0, x1)
    hit = torch.triu(segments_cross(a[:, None], b[:, None], a[None], b[None]), diagonal=1)
    i, j = (v.numpy() for v in torch.nonzero(hit, as_tuple=True))
    starts, ends = a.numpy(), b.numpy()
    r, w, d = ends[i] - starts[i], ends[j] - starts[j], starts[j] - starts[i]

    def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    denom = cross(r, w)  # never 0 for a proper crossing
    t_i, t_j = cross(d, w) / denom, cross(d, r) / denom
    return SegmentCrossings(i=i, j=j, point=starts[i] + t_i[:, None] * r, t_i=t_i, t_j=t_j)


# -- Bezier geometry -----------------------------------------------------------------------------
