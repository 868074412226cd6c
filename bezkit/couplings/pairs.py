"""Pairs (X0, X1) and the finite pools of pairs that the cached couplings sample from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["Coupling", "PairPool", "Pairs"]


@dataclass(frozen=True)
class Pairs:
    """A batch of pairs and, for Bezier paths, their guide points (each shaped like ``x0``)."""

    x0: Tensor
    x1: Tensor
    guides: tuple[Tensor, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.x0.shape != self.x1.shape:
            raise ValueError(
                f"x0 and x1 must have the same shape, got {tuple(self.x0.shape)} and "
                f"{tuple(self.x1.shape)}"
            )
        for k, g in enumerate(self.guides):
            if g.shape != self.x0.shape:
                raise ValueError(
                    f"guide {k + 1} has shape {tuple(g.shape)}, expected {tuple(self.x0.shape)}"
                )

    def __len__(self) -> int:
        return self.x0.shape[0]

    def astuple(self) -> tuple[Tensor, Tensor]:
        """``(x0, x1)``, for unpacking."""
        return self.x0, self.x1

    def to(self, device: torch.device | str) -> Pairs:
        """The same pairs (and guides) on ``device``."""
        return Pairs(
            self.x0.to(device), self.x1.to(device), tuple(g.to(device) for g in self.guides)
        )

    def index(self, idx: Tensor) -> Pairs:
        """The pairs ``idx`` selects (an index tensor or a boolean mask), guides included."""
        return Pairs(self.x0[idx], self.x1[idx], tuple(g[idx] for g in self.guides))


class Coupling(Protocol):
    """How pairs are drawn: ``coupling.sample(n, generator) -> Pairs``."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """``n`` pairs; the same generator state gives the same pairs."""
        ...


class PairPool:
    """A fixed set of pairs (generated once), sampled uniformly with replacement."""

    def __init__(self, pairs: Pairs) -> None:
        if len(pairs) < 1:
            raise ValueError("a PairPool needs at least one pair")
        for name, t in (("x0", pairs.x0), ("x1", pairs.x1), *(("guide", g) for g in pairs.guides)):
            if not torch.isfinite(t).all():
                raise ValueError(f"pair pool {name} contains NaN or inf")
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """``n`` pairs drawn uniformly with replacement from the pool."""
        idx = torch.randint(0, len(self.pairs), (n,), generator=generator)
        return self.pairs.index(idx)

    def __repr__(self) -> str:
        return f"PairPool(n={len(self)}, guides={len(self.pairs.guides)})"
