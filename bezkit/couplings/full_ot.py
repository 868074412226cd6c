"""Full OT map: one exact OT problem between N sources and N targets, solved once and cached.

The flow trained on these pairs is the straightest coupling a finite sample allows: no swap of two
partners lowers the cost, so two particles moving along their segments never meet at the same time
(their segments may still cross at different times; see docs/METHODS.md, section 7). Pairs are then
drawn from the N matched pairs.
"""

from __future__ import annotations

import torch

from bezkit.couplings.ot_plan import exact_ot_permutation
from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.data.toy2d import Sampler

__all__ = ["FullOTCoupling"]


class FullOTCoupling(PairPool):
    """``n_points`` sources and targets matched once by the exact OT permutation, then sampled.

    ``sigma = argmin_sigma sum_i ||x0_i - x1_sigma(i)||^2`` over the whole sample (``solver``: POT's
    ``emd`` or scipy's Hungarian ``linear_sum_assignment``); the pool holds ``(x0_i, x1_sigma(i))``
    and ``sample(n, generator)`` draws from it uniformly with replacement.
    """

    def __init__(
        self,
        source: Sampler,
        target: Sampler,
        *,
        n_points: int = 2048,
        seed: int = 0,
        solver: str = "emd",
    ) -> None:
        if n_points < 2:
            raise ValueError(f"full OT needs n_points >= 2, got {n_points}")
        g = torch.Generator().manual_seed(seed)
        x0 = source.sample(n_points, g)
        x1 = target.sample(n_points, g)
        super().__init__(Pairs(x0, x1[exact_ot_permutation(x0, x1, solver=solver)]))

    def __repr__(self) -> str:
        return f"FullOTCoupling(n={len(self)})"
