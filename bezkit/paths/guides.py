"""Where a Bezier path's guide points come from (METHODS.md section 1, "Guide placement").

- ``control``: the guide *is* the teacher's state (the curve is pulled towards it, but in general does
  not pass through it).
- ``interpolate``: the guide is chosen so that the curve passes *through* the teacher's state.
  Quadratic, one state ``Z`` at time ``s``:

      G = (Z - (1-s)^2 X0 - s^2 X1) / (2 s (1-s))

  Cubic, states ``Z1, Z2`` at times ``s1 != s2``: ``B(s_k) = Z_k`` is a 2 x 2 linear system per sample
  in ``(G1, G2)`` with coefficients ``3 (1-s)^2 s`` and ``3 (1-s) s^2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from bezkit.paths.bezier import bernstein

__all__ = ["GUIDE_PLACEMENTS", "GuidePlacement", "check_guide_times", "place_guides"]

GuidePlacement = Literal["control", "interpolate"]
#: The guide placements (the one tuple the CLI, widgets and experiment use).
GUIDE_PLACEMENTS: tuple[str, ...] = ("control", "interpolate")


def check_guide_times(times: Sequence[float]) -> tuple[float, ...]:
    """Guide times must lie strictly inside (0, 1) and be distinct."""
    times = tuple(float(s) for s in times)
    for s in times:
        if not 0.0 < s < 1.0:
            raise ValueError(f"guide time must lie strictly inside (0, 1), got {s}")
    if len(set(times)) != len(times):
        raise ValueError(f"guide times must be distinct, got {times}")
    return times


def place_guides(
    states: Sequence[Tensor],
    times: Sequence[float],
    x0: Tensor,
    x1: Tensor,
    placement: GuidePlacement = "control",
) -> tuple[Tensor, ...]:
    """Turn teacher states ``Z_k`` (at times ``s_k``) into the guides of an order ``len+1`` curve.

    ``control`` returns the states unchanged. ``interpolate`` solves ``B(s_k) = Z_k`` for the guides,
    for any order: the unknowns' Bernstein coefficients form a small ``m x m`` matrix shared by all
    samples (the quadratic and cubic formulas of the module docstring are its m = 1, 2 cases).
    """
    states = tuple(states)
    times = check_guide_times(times)
    if len(states) != len(times):
        raise ValueError(f"got {len(states)} teacher states but {len(times)} guide times")
    for k, z in enumerate(states):
        if z.shape != x0.shape:
            raise ValueError(
                f"teacher state {k + 1} has shape {tuple(z.shape)}, expected {tuple(x0.shape)}"
            )
    if placement == "control":
        return states
    if placement not in GUIDE_PLACEMENTS:
        raise ValueError(
            f"unknown guide placement {placement!r}; known: {', '.join(GUIDE_PLACEMENTS)}"
        )
    m = len(states)
    if m == 0:
        return ()
    order = m + 1
    s = torch.tensor(times, dtype=torch.float64)
    w = bernstein(order, s)  # (order+1, m): w[i, k] weight of P_i at time s_k
    a = w[1:order].T  # (m, m): rows = times, cols = guides
    flat0 = x0.reshape(x0.shape[0], -1).double()
    flat1 = x1.reshape(x1.shape[0], -1).double()
    rhs = torch.stack(
        [
            z.reshape(z.shape[0], -1).double() - w[0, k] * flat0 - w[order, k] * flat1
            for k, z in enumerate(states)
        ]
    )  # (m, n, D)
    sol = torch.linalg.solve(a, rhs.reshape(m, -1)).reshape(rhs.shape)
    return tuple(sol[k].reshape(x0.shape).to(x0.dtype) for k in range(m))
