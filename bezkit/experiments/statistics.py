"""Means, 95% intervals and paired differences over training seeds (METHODS.md section 6).

Every number of the experiment is measured for ``S`` training seeds and ``D`` evaluation draws.
Per seed the draws are averaged first (they share the seed's model), then over seeds:

    mean = (1/S) sum_s x_s,   95% interval = mean +- t_{0.975, S-1} * sd / sqrt(S)

with the sample standard deviation ``sd`` (Student's t interval; no interval for one seed).
A *paired* difference of method ``a`` against baseline ``b`` takes ``d_s = a_s - b_s`` first (same
seed, same evaluation samples), then the same interval of ``d``: the noise shared by both methods
(which evaluation points, which target points fall in each moon) cancels. Each seed has its own
evaluation draws, so the spread over seeds carries the evaluation noise as well as the training noise.

Many claims are answered at once, so each difference also carries the two-sided p-value of the
paired t-test ``T = mean / (sd / sqrt(S))`` (``S - 1`` degrees of freedom; the interval excludes 0
exactly when ``p < 0.05``) and verdicts are read from Holm-adjusted p-values
(:func:`holm`): for ``m`` tests with ordered p-values ``p_(1) <= ... <= p_(m)``,

    p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)),

which keeps the family-wise error rate at 5% for any dependence between the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

__all__ = [
    "ALPHA",
    "Interval",
    "better",
    "budget_verdict",
    "holm",
    "paired_difference",
    "seed_means",
    "t_interval",
    "t_test_p",
    "verdict",
]

#: The family-wise error rate of the verdicts (and 1 - the level of every interval).
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with its 95% t-interval ``[low, high]`` (``low == high == mean``
    when ``n == 1``) and the two-sided t-test p-value of "the mean is 0" (``1.0`` when ``n == 1``:
    one seed tests nothing)."""

    mean: float
    low: float
    high: float
    n: int
    p: float = 1.0

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
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "p": self.p}


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
    return Interval(mean, mean - half, mean + half, n, t_test_p(xs))


def t_test_p(values: Sequence[float]) -> float:
    """Two-sided p-value of the one-sample t-test of mean 0: ``T = mean / (sd / sqrt(n))``,
    ``p = 2 P(t_{n-1} > |T|)``. One value (or all equal to 0) gives 1; values all equal to one
    non-zero number give 0 (no spread: the mean is certainly not 0)."""
    xs = _finite(values, "t_test_p")
    n = len(xs)
    if n < 2:
        return 1.0
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(2.0 * stats.t.sf(abs(t), n - 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: with the p-values sorted
    ``p_(1) <= ... <= p_(m)``, ``p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``. Rejecting where
    ``p~ < alpha`` keeps the family-wise error rate at ``alpha`` (Holm 1979)."""
    ps = [float(p) for p in p_values]
    if any(not 0.0 <= p <= 1.0 for p in ps):
        raise ValueError(f"p-values must lie in [0, 1], got {ps}")
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


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


def verdict(difference: Interval, adjusted_p: float, *, alpha: float = ALPHA) -> str:
    """:func:`better` read from an adjusted p-value: ``"yes"`` (``A - B`` below 0) or
    ``"no (worse)"`` when ``adjusted_p < alpha``, else ``"not distinguishable"``."""
    if difference.n < 2 or not adjusted_p < alpha:
        return "not distinguishable"
    return "yes" if difference.mean < 0 else "no (worse)"


def budget_verdict(answers: Sequence[str]) -> str:
    """One answer from the verdicts of the same claim at several student budgets: the common
    answer when they agree, else ``"depends on budget"``."""
    if not answers:
        raise ValueError("budget_verdict needs at least one answer")
    return answers[0] if len(set(answers)) == 1 else "depends on budget"
