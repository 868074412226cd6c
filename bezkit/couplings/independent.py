"""Independent coupling: X0 ~ pi0 and X1 ~ pi1 drawn independently (1-rectified flow, I-CFM)."""

from __future__ import annotations

import torch

from bezkit.couplings.pairs import Pairs
from bezkit.data.toy2d import Sampler

__all__ = ["IndependentCoupling"]


class IndependentCoupling:
    """``(X0, X1) ~ pi0 x pi1``."""

    def __init__(self, source: Sampler, target: Sampler) -> None:
        self.source, self.target = source, target

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """``n`` sources, then ``n`` targets, from one generator; pair ``i`` is ``(x0_i, x1_i)``."""
        return Pairs(self.source.sample(n, generator), self.target.sample(n, generator))

    def __repr__(self) -> str:
        return f"IndependentCoupling({self.source!r} -> {self.target!r})"
