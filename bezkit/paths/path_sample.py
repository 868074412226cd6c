"""The value a path returns for a batch of pairs at a batch of times."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["PathSample"]


@dataclass(frozen=True)
class PathSample:
    """A point on the path joining each pair, and the path's velocity there.

    Attributes:
        x0: sources ``(n, *d)`` (the curve at t = 0).
        x1: targets ``(n, *d)`` (the curve at t = 1).
        t: times ``(n,)`` in [0, 1].
        x_t: the curve ``B(t)`` ``(n, *d)``.
        dx_t: its tangent ``B'(t)`` ``(n, *d)``, the velocity a flow following the path has.
        guides: the curve's guide points ``P_1 .. P_{n-1}`` (``()`` for the linear path; ``None``
            when unknown, e.g. a sample built by hand: the endpoint target then refuses it).
    """

    x0: Tensor
    x1: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor
    guides: tuple[Tensor, ...] | None = None
