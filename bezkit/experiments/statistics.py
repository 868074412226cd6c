"""Means, 95% intervals and paired differences over training seeds (METHODS.md section 6).

Every number of the experiment is measured for ``S`` training seeds and ``D`` evaluation draws.
Per seed the draws are averaged first (they share the seed's model), then over seeds:

    mean = (1/S) sum_s x_s,   95% interval = mean +- t_{0.975, S-1} * sd / sqrt(S)

with the sample standard deviation ``sd`` (Student's t interval; no interval for one seed).
A *paired* difference of method ``a`` against baseline ``b`` takes ``d_s = a_s - b_s`` first (same
seed, same evaluation samples), then the same interval of ``d``: the noise shared by both methods
(which evaluation points, which target points fall in each moon) cancels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

__all__ = ["Interval", "better", "paired_difference", "seed_means", "t_interval"]


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with its 95% t-interval ``[low, high]`` (``low == high == mean``
    when ``n == 1``)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of zero (a distinguishable difference)."""
        return self.n > 1 and (self.low > 0 or self.high < 0)

    def format(self, digits: int = 3) -> str:
        """``0.123 [0.101, 0.145]`` (``0.123`` alone for one seed)."""
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def _finite(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{what}: no values")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what}: non-finite value in {out}")
    return out


def t_interval(values: Sequence[float], *, level: float = 0.95) -> Interval:
    """Mean and Student-t interval at ``level`` of independent per-seed ``values``."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    xs = _finite(values, "t_interval")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, mean, mean, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def seed_means(per_seed_draws: Sequence[Sequence[float]]) -> list[float]:
    """Average each seed's evaluation draws: ``[[d0, d1, ...] per seed] -> [mean per seed]``."""
    return [sum(_finite(d, "seed_means")) / len(d) for d in per_seed_draws]


def paired_difference(
    values: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    *,
    level: float = 0.95,
) -> Interval:
    """Interval of ``method - baseline`` from per-seed, per-draw values of both (same seeds and
    draws, in the same order): differences are taken draw by draw, averaged per seed, then
    :func:`t_interval` over seeds."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need the same seeds: {len(values)} and {len(baseline)}")
    diffs = []
    for a, b in zip(values, baseline, strict=True):
        if len(a) != len(b):
            raise ValueError(f"paired values need the same draws: {len(a)} and {len(b)}")
        diffs.append([x - y for x, y in zip(a, b, strict=True)])
    return t_interval(seed_means(diffs), level=level)


def better(difference: Interval) -> str:
    """The answer to "is A better (lower) than B?" from the interval of ``A - B``: ``"yes"`` when
    the whole interval is below zero, ``"no (worse)"`` when it is above, otherwise
    ``"not distinguishable"`` (also for a single seed, which has no interval)."""
    if difference.n > 1 and difference.high < 0:
        return "yes"
    if difference.n > 1 and difference.low > 0:
        return "no (worse)"
    return "not distinguishable"
