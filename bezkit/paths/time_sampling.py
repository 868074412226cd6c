"""How training times t are drawn (METHODS.md section 2).

- ``uniform``: t ~ U[0, 1].
- ``ushaped``: density ``p(t) ~ exp(a t) + exp(a (1 - t))`` (a = 4 by default; Lee et al. 2024),
  sampled exactly by inverting the CDF of a mixture of two truncated exponentials.
- ``logitnormal``: ``t = sigmoid(m + s * eps)``, eps ~ N(0, 1).
- ``discrete``: t drawn uniformly from a fixed grid, e.g. {0} for one-step distillation or
  {0, 1/N, ..., (N-1)/N} for N-step distillation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "DiscreteTime",
    "LogitNormalTime",
    "TimeSampler",
    "UShapedTime",
    "UniformTime",
    "distill_times",
    "make_time_sampler",
]


class TimeSampler:
    """Base class: ``sampler(n, generator) -> (n,)`` times in [0, 1]."""

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError


class UniformTime(TimeSampler):
    """t ~ U[0, 1]."""

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, generator=generator)

    def __repr__(self) -> str:
        return "UniformTime()"


class UShapedTime(TimeSampler):
    """``p(t) = a (e^(a t) + e^(a (1-t))) / (2 (e^a - 1))`` on [0, 1]."""

    def __init__(self, a: float = 4.0) -> None:
        if a <= 0:
            raise ValueError(f"U-shaped time parameter a must be > 0, got {a}")
        self.a = float(a)

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        # Mixture of two equally weighted exponentials truncated to [0, 1]: one increasing in t,
        # its mirror image decreasing. Inverse CDF of e^(a t) on [0, 1]: log(1 + u (e^a - 1)) / a.
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        flip = torch.rand(n, generator=generator) < 0.5
        t = torch.log1p(u * math.expm1(self.a)) / self.a
        return torch.where(flip, 1.0 - t, t).float().clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return f"UShapedTime(a={self.a})"


class LogitNormalTime(TimeSampler):
    """``t = sigmoid(mean + std * eps)``."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        if std <= 0:
            raise ValueError(f"logit-normal std must be > 0, got {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.sigmoid(self.mean + self.std * torch.randn(n, generator=generator))

    def __repr__(self) -> str:
        return f"LogitNormalTime(mean={self.mean}, std={self.std})"


class DiscreteTime(TimeSampler):
    """t drawn uniformly from a fixed set of values in [0, 1]."""

    def __init__(self, values: Sequence[float]) -> None:
        vals = torch.tensor([float(v) for v in values])
        if vals.numel() == 0:
            raise ValueError("DiscreteTime needs at least one time value")
        if (vals < 0).any() or (vals >= 1).any():
            raise ValueError(f"discrete times must lie in [0, 1), got {vals.tolist()}")
        self.values = vals

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        idx = torch.randint(0, self.values.numel(), (n,), generator=generator)
        return self.values[idx]

    def __repr__(self) -> str:
        return f"DiscreteTime({self.values.tolist()})"


def distill_times(steps: int) -> DiscreteTime:
    """The N-step distillation grid ``{0, 1/N, ..., (N-1)/N}`` (N = 1: t = 0 only)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"distillation steps must be an int >= 1, got {steps!r}")
    return DiscreteTime([k / steps for k in range(steps)])


def make_time_sampler(name: str, **kwargs: float) -> TimeSampler:
    """Look a time sampler up by name: uniform, ushaped, logitnormal."""
    table = {"uniform": UniformTime, "ushaped": UShapedTime, "logitnormal": LogitNormalTime}
    if name not in table:
        raise ValueError(f"unknown time sampling {name!r}; known: {', '.join(table)}")
    return table[name](**kwargs)
