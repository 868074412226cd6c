"""Check for lesson 07: the sliced W2 of the digits table, written by the student.

``sliced_w2(a, b, theta) -> float``: for two equal-size samples ``a, b`` of shape ``(n, d)`` (images
flattened) and unit directions ``theta`` of shape ``(d, P)``,

    SW2 = sqrt( (1 / (P n)) sum_p sum_i (sort(a theta_p)_i - sort(b theta_p)_i)^2 ),

the 1D W2 along each direction (the i-th smallest projection of ``a`` paired with the i-th smallest
of ``b``), averaged over the directions: :func:`bezkit.metrics.sliced_wasserstein2` with the same
directions. The check names the usual slips: no sorting, no square root, a sum instead of a mean,
only one side sorted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from bezkit.exercises.result import CheckResult, attempt

__all__ = ["check_sliced_w2", "sliced_w2", "unit_directions"]


def unit_directions(dim: int, count: int, seed: int = 0) -> Tensor:
    """``count`` seeded unit directions in ``dim`` dimensions, ``(dim, count)``, float64: the ones
    :func:`bezkit.metrics.sliced_wasserstein2` draws with the same seed."""
    theta = torch.randn(
        dim, count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return theta / theta.norm(dim=0, keepdim=True)


def sliced_w2(a: Tensor, b: Tensor, theta: Tensor) -> float:
    """The reference sliced W2 of ``a, b`` (``(n, d)``) along the columns of ``theta``."""
    pa = torch.sort(a.double() @ theta, dim=0).values
    pb = torch.sort(b.double() @ theta, dim=0).values
    return float((pa - pb).pow(2).mean().sqrt())


def _slips(a: Tensor, b: Tensor, theta: Tensor) -> dict[str, float]:
    pa, pb = a.double() @ theta, b.double() @ theta
    sa, sb = torch.sort(pa, dim=0).values, torch.sort(pb, dim=0).values
    want = float((sa - sb).pow(2).mean().sqrt())
    return {
        "Sort the projections of each sample first: in 1D, W2 pairs the i-th smallest of a with the "
        "i-th smallest of b.": float((pa - pb).pow(2).mean().sqrt()),
        "Sort both samples' projections, not only one.": float((sa - pb).pow(2).mean().sqrt()),
        "Take the square root at the end (that is SW2 squared).": want**2,
        "Average over the points and the directions (you summed).": float(
            (sa - sb).pow(2).sum().sqrt()
        ),
    }


def check_sliced_w2(fn: Callable[[Tensor, Tensor, Tensor], float]) -> CheckResult:
    """Check ``fn(a, b, theta)`` on seeded samples of 40 points in 64 dimensions, 16 directions."""
    name = "7.3 sliced W2"
    g = torch.Generator().manual_seed(3)
    a = torch.randn(40, 64, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(40, 64, generator=g, dtype=torch.float64) + 0.3
    theta = unit_directions(64, 16, seed=5)
    got = attempt(name, fn, a.clone(), b.clone(), theta.clone())
    if isinstance(got, CheckResult):
        return got
    try:
        value = float(got.detach() if isinstance(got, Tensor) else got)
    except (TypeError, ValueError, RuntimeError):
        return CheckResult.fail(name, f"return one number, got {type(got).__name__}.")
    want = sliced_w2(a, b, theta)
    if np.isclose(value, want, rtol=1e-6):
        return CheckResult.ok(name, f"{value:.4f} matches on 40 points in 64 dimensions.")
    hint = next((h for h, v in _slips(a, b, theta).items() if np.isclose(value, v, rtol=1e-6)), "")
    return CheckResult.fail(name, f"you returned {value:.4f}, expected {want:.4f}. {hint}".rstrip())
