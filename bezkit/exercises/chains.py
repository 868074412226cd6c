"""Checks for lesson 05: reading the experiment's chains with paired intervals.

- ``paired_interval(a, b) -> (mean, low, high)``: the 95% t-interval of ``a - b`` from per-seed,
  per-draw values of two methods on the same seeds and evaluation draws. With
  ``d_s = mean_j (a[s][j] - b[s][j])`` for each of the ``n`` seeds, ``mean = (1/n) sum_s d_s`` and
  ``mean -/+ t_{0.975, n-1} sd(d) / sqrt(n)`` (``sd`` with ``n - 1`` in the denominator), as
  :func:`bezkit.experiments.statistics.paired_difference` computes it;
- ``verdict(low, high) -> "yes" | "no" | "not distinguishable"``: the answer to "is A better (lower)
  than B?" from the interval of ``A - B``: yes when the whole interval is below 0, no when it is
  above, otherwise not distinguishable (an interval that reaches 0 contains it);
- ``first_better_round(differences) -> k | None``: from ``{k: Interval of (chain - reflow chain)}``
  (:func:`bezkit.experiments.results.chain_difference_by_k`), the first round at which the chain is
  distinguishably better than the reflow chain, or ``None`` when it never is.

The expected answers are computed from the numbers the check passes in (practice tables, or the
lesson's own results file), so the checks hold for any run of the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bezkit.exercises.result import CheckResult, attempt, fmt
from bezkit.experiments.statistics import Interval, better, paired_difference, t_interval

__all__ = [
    "PRACTICE_DIFFERENCES",
    "PRACTICE_PAIRS",
    "check_first_better_round",
    "check_paired_interval",
    "check_verdict",
    "first_better_round",
    "verdict",
]

Values = Sequence[Sequence[float]]

#: ``(a, b)`` pairs of per-seed, per-draw W2 values of two methods (made-up, same seeds and draws):
#: a shared per-seed offset that hides a small gap, a gap that is not distinguishable, five seeds.
PRACTICE_PAIRS: tuple[tuple[list[list[float]], list[list[float]]], ...] = (
    ([[0.31, 0.33], [0.36, 0.39], [0.28, 0.30]], [[0.32, 0.35], [0.37, 0.39], [0.30, 0.31]]),
    ([[0.20, 0.22], [0.25, 0.21], [0.19, 0.24]], [[0.21, 0.20], [0.22, 0.23], [0.21, 0.22]]),
    (
        [[0.15, 0.16], [0.17, 0.17], [0.16, 0.18], [0.15, 0.15], [0.19, 0.18]],
        [[0.14, 0.14], [0.15, 0.16], [0.16, 0.16], [0.13, 0.14], [0.17, 0.17]],
    ),
)

#: ``{k: Interval of (chain - reflow chain)}`` tables (made-up): better from round 3 on; better at
#: round 2 only by its mean (the interval contains 0); worse at every round after the first.
PRACTICE_DIFFERENCES: tuple[dict[int, Interval], ...] = (
    {
        1: Interval(0.0, 0.0, 0.0, 3),
        2: Interval(-0.004, -0.010, 0.002, 3),
        3: Interval(-0.012, -0.020, -0.004, 3),
        4: Interval(-0.020, -0.030, -0.010, 3),
    },
    {
        1: Interval(0.0, 0.0, 0.0, 3),
        2: Interval(-0.006, -0.015, 0.003, 3),
        3: Interval(0.001, -0.008, 0.010, 3),
    },
    {
        1: Interval(0.0, 0.0, 0.0, 3),
        2: Interval(0.020, 0.010, 0.030, 3),
        3: Interval(0.025, 0.012, 0.038, 3),
        4: Interval(0.030, 0.016, 0.044, 3),
    },
)

#: The interval cases of :func:`check_verdict`: ``(low, high, what it shows)``.
VERDICT_CASES: tuple[tuple[float, float, str], ...] = (
    (-0.030, -0.010, "the whole interval below 0"),
    (0.010, 0.025, "the whole interval above 0"),
    (-0.010, 0.020, "an interval around 0"),
    (-0.020, 0.0, "an interval that ends exactly at 0"),
    (-0.001, 0.040, "an interval mostly above 0"),
)


def verdict(low: float, high: float) -> str:
    """The reference answer of exercise 5.2 (see the module docstring)."""
    answer = better(Interval((low + high) / 2, low, high, 2))
    return "no" if answer == "no (worse)" else answer


def first_better_round(differences: Mapping[int, Interval]) -> int | None:
    """The reference answer of exercise 5.3: the first k whose whole interval is below 0."""
    return next((k for k in sorted(differences) if better(differences[k]) == "yes"), None)


def _as_triple(value: Any) -> tuple[float, float, float] | str:
    if isinstance(value, Interval):
        return value.mean, value.low, value.high
    try:
        mean, low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        return f"return three numbers (mean, low, high), not {value!r}"
    return mean, low, high


def _variance(xs: Sequence[float]) -> float:
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _paired_mistakes(a: Values, b: Values) -> dict[str, tuple[float, float, float]]:
    """What common mistakes give, as ``(mean, low, high)``, to name the one a student made."""
    diffs = [
        sum(x - y for x, y in zip(ra, rb, strict=True)) / len(ra)
        for ra, rb in zip(a, b, strict=True)
    ]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    sd_pop = math.sqrt(sum((d - mean) ** 2 for d in diffs) / n)
    right = t_interval(diffs)
    t = right.half_width * math.sqrt(n) / sd if sd > 0 else 0.0
    a_means = [sum(r) / len(r) for r in a]
    b_means = [sum(r) / len(r) for r in b]
    spread = math.sqrt(_variance(a_means) / n + _variance(b_means) / n)
    out = {
        "the sign is reversed: compute a - b, not b - a": (-mean, -right.high, -right.low),
        "1.96 is the normal quantile; with n seeds use Student's t with n - 1 degrees of "
        "freedom (scipy.stats.t.ppf(0.975, n - 1))": (
            mean,
            mean - 1.96 * sd / math.sqrt(n),
            mean + 1.96 * sd / math.sqrt(n),
        ),
        "divide the standard deviation by sqrt(n) (the interval is for the mean)": (
            mean,
            mean - t * sd,
            mean + t * sd,
        ),
        "the standard deviation of a sample divides by n - 1, not n": (
            mean,
            mean - t * sd_pop / math.sqrt(n),
            mean + t * sd_pop / math.sqrt(n),
        ),
        "that is an unpaired interval (each method's own spread): take the differences seed by "
        "seed first, then one interval of those": (mean, mean - t * spread, mean + t * spread),
    }
    flat = [x - y for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)]
    flat_iv = t_interval(flat)
    out["average each seed's draws first: the draws of one seed are not independent seeds"] = (
        flat_iv.mean,
        flat_iv.low,
        flat_iv.high,
    )
    return out


def check_paired_interval(
    fn: Callable[[Values, Values], Any],
    pairs: Sequence[tuple[Values, Values]] | None = None,
) -> CheckResult:
    """Check ``fn(a, b)`` returns ``(mean, low, high)`` of the paired 95% t-interval of ``a - b``.

    Without ``pairs``: every :data:`PRACTICE_PAIRS`. A wrong answer is compared with the results
    of common mistakes (sign, normal quantile, no sqrt(n), unpaired, draws as seeds) to name one.
    """
    name = "5.1 paired interval"
    for a, b in PRACTICE_PAIRS if pairs is None else pairs:
        want = paired_difference(a, b)
        got = attempt(name, fn, [list(r) for r in a], [list(r) for r in b])
        if isinstance(got, CheckResult):
            return got
        triple = _as_triple(got)
        if isinstance(triple, str):
            return CheckResult.fail(name, triple + ".")
        expected = (want.mean, want.low, want.high)
        if all(math.isclose(g, e, abs_tol=1e-6) for g, e in zip(triple, expected, strict=True)):
            continue
        hint = next(
            (
                why
                for why, guess in _paired_mistakes(a, b).items()
                if all(math.isclose(g, e, abs_tol=1e-6) for g, e in zip(triple, guess, strict=True))
            ),
            "check each step: per-seed mean of the draw-by-draw differences, their mean, "
            "t_{0.975, n-1} sd / sqrt(n)",
        )
        return CheckResult.fail(
            name,
            f"for a = {a}, b = {b} you returned {fmt(list(triple))}, expected "
            f"{fmt(list(expected))}. Hint: {hint}.",
        )
    return CheckResult.ok(name, "mean and 95% t-interval of the paired differences agree.")


def check_verdict(fn: Callable[[float, float], str]) -> CheckResult:
    """Check ``fn(low, high)`` answers "is A better than B?" from the interval of ``A - B``."""
    name = "5.2 yes / no / not distinguishable"
    for low, high, what in VERDICT_CASES:
        got = attempt(name, fn, low, high)
        if isinstance(got, CheckResult):
            return got
        want = verdict(low, high)
        answer = str(got).strip().lower()
        if answer == "no (worse)":
            answer = "no"
        if answer not in ("yes", "no", "not distinguishable"):
            return CheckResult.fail(
                name, f"answer 'yes', 'no' or 'not distinguishable', not {got!r}."
            )
        if answer == want:
            continue
        hint = ""
        if {answer, want} == {"yes", "no"}:
            hint = " A - B below 0 means A has the lower W2: A is better."
        elif want == "not distinguishable":
            hint = " An interval that contains (or reaches) 0 cannot tell the methods apart."
        elif answer == "not distinguishable":
            hint = " Only the interval's position matters, not how wide it is."
        return CheckResult.fail(
            name,
            f"for {what}, [{low}, {high}], you said {answer!r}, expected {want!r}.{hint}",
        )
    return CheckResult.ok(name, f"all {len(VERDICT_CASES)} intervals answered right.")


def check_first_better_round(
    fn: Callable[[Mapping[int, Interval]], int | None],
    differences: Mapping[int, Interval] | None = None,
) -> CheckResult:
    """Check ``fn(differences)`` names the first round at which a chain is distinguishably better
    than the reflow chain (``None`` when never), on every :data:`PRACTICE_DIFFERENCES` and then on
    ``differences`` (the lesson passes its results file's table)."""
    name = "5.3 when does a chain pass the reflow chain?"
    tables = list(PRACTICE_DIFFERENCES) + ([dict(differences)] if differences is not None else [])
    for table in tables:
        if not table:
            raise ValueError("check_first_better_round: the table of differences is empty")
        got = attempt(name, fn, dict(table))
        if isinstance(got, CheckResult):
            return got
        want = first_better_round(table)
        if got == want:
            continue
        rows = ", ".join(f"k={k}: {iv.format()}" for k, iv in sorted(table.items()))
        by_mean = next((k for k in sorted(table) if table[k].mean < 0), None)
        worse = next((k for k in sorted(table) if table[k].low > 0), None)
        if got == by_mean:
            hint = " A negative mean is not enough: the whole interval must be below 0."
        elif got is not None and got == worse:
            hint = " That round's interval is above 0: the chain is *worse* there (higher W2)."
        elif want is None:
            hint = " No interval lies wholly below 0 here: return None."
        else:
            hint = " Look for the smallest k whose interval's upper end is below 0."
        return CheckResult.fail(
            name, f"for the table {rows} you returned {got!r}, expected {want!r}.{hint}"
        )
    what = " (practice tables and this run's)" if differences is not None else ""
    return CheckResult.ok(name, f"{len(tables)} tables read right{what}.")
