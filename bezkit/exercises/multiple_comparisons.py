"""Check for lesson 05: Holm's correction for reading many claims at once.

``holm(p_values, alpha) -> list[bool]``: which of ``m`` hypotheses to reject at family-wise error
rate ``alpha``. Sort the p-values, ``p_(1) <= ... <= p_(m)``; reject ``H_(1), ..., H_(r)`` where ``r``
is the largest count with ``p_(i) <= alpha / (m - i + 1)`` for **every** ``i <= r`` (step down: stop
at the first ``p_(i)`` above its threshold). Return the decisions in the **input** order.

:func:`p_value` turns a paired t-interval (``bezkit.experiments.statistics.Interval``: mean, 95%
bounds, number of seeds) back into its two-sided p-value, so that the lesson can correct its table
of claims. The check's cases separate Holm from the usual slips: no correction, Bonferroni
(``alpha / m`` for all, which is valid but rejects less), not stopping at the first failure,
Hochberg's step-up, and decisions returned in sorted order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scipy import stats

from bezkit.exercises.result import CheckResult, attempt
from bezkit.experiments.statistics import Interval
from bezkit.experiments.statistics import holm as adjusted_holm

__all__ = ["HOLM_CASES", "check_holm", "holm", "p_value"]

#: ``(p_values, alpha)`` cases, each chosen to tell Holm from one slip.
HOLM_CASES: tuple[tuple[tuple[float, ...], float], ...] = (
    ((0.012, 0.02, 0.3), 0.05),  # Holm rejects 2, Bonferroni 1
    ((0.013, 0.014, 0.045, 0.3), 0.05),  # Holm none; Hochberg's step-up 2; uncorrected 3
    ((0.04, 0.03), 0.05),  # uncorrected rejects both, Holm none
    ((0.01, 0.04, 0.026), 0.05),  # step-down stops at 0.026; not stopping rejects 0.04
    ((0.3, 0.001), 0.05),  # the decisions in the input order
    ((0.001, 0.002, 0.003, 0.2), 0.01),
)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """The reference Holm step-down decisions, in the input order: rejected exactly where the
    experiment's Holm-adjusted p-value (:func:`bezkit.experiments.statistics.holm`) is <= alpha."""
    return [p <= alpha for p in adjusted_holm(p_values)]


def p_value(interval: Interval, level: float = 0.95) -> float:
    """The two-sided p-value of "the mean difference is 0" from its t-interval over ``n`` seeds."""
    n = interval.n
    half = (interval.high - interval.low) / 2
    if n < 2 or half <= 0:
        return 0.0 if interval.mean != 0 else 1.0
    se = half / float(stats.t.ppf(0.5 + level / 2, n - 1))
    return float(2 * stats.t.sf(abs(interval.mean) / se, n - 1))


def _slips(p: Sequence[float], alpha: float) -> dict[str, list[bool]]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    no_stop = [p[i] <= alpha / (m - order.index(i)) for i in range(m)]
    step_up = [False] * m
    for rank in range(m - 1, -1, -1):
        if p[order[rank]] <= alpha / (m - rank):
            for i in order[: rank + 1]:
                step_up[i] = True
            break
    sorted_order = sorted(holm(p, alpha), reverse=True)
    return {
        "no correction: that is p <= alpha for each claim alone": [v <= alpha for v in p],
        "Bonferroni (alpha / m for every claim): valid, but Holm compares the i-th smallest p with "
        "alpha / (m - i + 1)": [v <= alpha / m for v in p],
        "Holm stops at the first p-value above its threshold; you kept going": no_stop,
        "that is Hochberg's step-up; Holm steps down from the smallest p and stops at the first "
        "failure": step_up,
        "these are the decisions in sorted order: return them in the order of the p-values given": (
            sorted_order
        ),
    }


def check_holm(fn: Callable[[Sequence[float], float], Sequence[bool]]) -> CheckResult:
    """Check ``fn(p_values, alpha)`` on :data:`HOLM_CASES`, naming the slip it matches."""
    name = "5.4 Holm's correction"
    for p, alpha in HOLM_CASES:
        got = attempt(name, fn, list(p), alpha)
        if isinstance(got, CheckResult):
            return got
        try:
            value = [bool(v) for v in got]
        except TypeError:
            return CheckResult.fail(name, f"return one True / False per p-value, got {got!r}.")
        want = holm(p, alpha)
        if value == want:
            continue
        if len(value) != len(p):
            return CheckResult.fail(
                name, f"for {len(p)} p-values return {len(p)} decisions, got {len(value)}."
            )
        hint = next((h for h, v in _slips(p, alpha).items() if v == value and v != want), "")
        hint = f" Likely slip: {hint}." if hint else ""
        return CheckResult.fail(
            name,
            f"for p = {list(p)} at alpha = {alpha} you rejected {value}, Holm rejects {want}.{hint}",
        )
    return CheckResult.ok(name, f"all {len(HOLM_CASES)} families decided as Holm's step-down does.")
