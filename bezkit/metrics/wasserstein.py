"""Wasserstein-2 distances between sample sets (METHODS.md section 5).

- exact: ``W2 = sqrt(min_P sum_ij P_ij ||a_i - b_j||^2)`` with uniform marginals (POT ``ot.emd2``).
- sliced: ``SW2 = sqrt(E_theta W2^2(<theta, a>, <theta, b>))`` over random unit directions; in 1D the
  optimal plan sorts both sides, so each projection costs a sort.
- noise floor: the W2 between two independent samples of the *same* distribution and size: the
  value a perfect generator would get. Report it beside every W2.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor

from bezkit.data.toy2d import Sampler, check_points

__all__ = ["noise_floor", "reference_noise_floor", "sliced_wasserstein2", "wasserstein2"]

MAX_EXACT_N = 8192


def _flat(x: Tensor, name: str) -> Tensor:
    check_points(x, name=name)  # validates; it returns float32, which would drop float64 precision
    return x.reshape(x.shape[0], -1).double().cpu()


def wasserstein2(a: Tensor, b: Tensor) -> float:
    """Exact W2 between the empirical measures of ``a`` (n, *d) and ``b`` (m, *d):
    ``sqrt(min_P sum_ij P_ij ||a_i - b_j||^2)`` over plans ``P`` with marginals ``1/n`` and ``1/m``
    (float64; at most ``MAX_EXACT_N`` points a side)."""
    a, b = _flat(a, "a"), _flat(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples have different dimensions: {a.shape[1]} and {b.shape[1]}")
    if max(a.shape[0], b.shape[0]) > MAX_EXACT_N:
        raise ValueError(f"exact W2 is limited to n <= {MAX_EXACT_N}; use sliced_wasserstein2")
    cost = torch.cdist(a, b).pow(2).numpy()
    wa = np.full(a.shape[0], 1.0 / a.shape[0])
    wb = np.full(b.shape[0], 1.0 / b.shape[0])
    return float(np.sqrt(max(ot.emd2(wa, wb, cost, numItermax=10_000_000), 0.0)))


def sliced_wasserstein2(a: Tensor, b: Tensor, *, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced W2 with ``n_projections`` seeded random unit directions (equal sample sizes):
    ``sqrt(mean_theta mean_i (sort(a theta)_i - sort(b theta)_i)^2)``."""
    a, b = _flat(a, "a"), _flat(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"sliced W2 needs equal sample shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    # one projection per row: sorting contiguous rows is several times faster than sorting the
    # strided columns of ``a @ theta`` (the same values)
    pa = torch.sort((a @ theta).T.contiguous(), dim=1).values
    pb = torch.sort((b @ theta).T.contiguous(), dim=1).values
    # the mean over the (n, projections) layout of the column formula: the same rounding
    return float(torch.sqrt(((pa - pb) ** 2).T.contiguous().mean()))


def noise_floor(target: Sampler, n: int, *, seed: int = 0, sliced: bool = False) -> float:
    """W2 between two independent size-``n`` samples of ``target`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    a, b = target.sample(n, g), target.sample(n, g)
    return sliced_wasserstein2(a, b, seed=seed) if sliced else wasserstein2(a, b)


def reference_noise_floor(
    target: Sampler, reference: Tensor, *, repeats: int = 5, seed: int = 0
) -> list[float]:
    """W2 of ``repeats`` fresh real samples (size of ``reference``) to the same ``reference``.

    This is the W2 a perfect generator would score against this exact reference set; its spread
    shows how large a difference between two methods must be before it means anything.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    g = torch.Generator().manual_seed(seed)
    return [wasserstein2(target.sample(reference.shape[0], g), reference) for _ in range(repeats)]
