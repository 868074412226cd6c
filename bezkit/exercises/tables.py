"""Checks for reading a result table: ``{model: {steps: W2}}`` as the lessons print it.

- ``best_at(table, steps) -> name``: the model with the lowest W2 at that number of steps;
- ``worse_with_more_steps(table, few, many) -> set of names``: the models whose W2 at ``many``
  steps is higher than at ``few`` (the one-step students of lesson 04 and 06).

The expected answer is computed from the same table the student reads, so the check holds on any
machine even though the last digits of a trained model's W2 vary.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from bezkit.exercises.result import CheckResult, attempt

__all__ = ["PRACTICE_TABLES", "check_best_at", "check_worse_with_more_steps"]

Table = Mapping[str, Mapping[int, float]]

#: Tables the checks use when none is given: W2 of made-up models at 1, 4 and 16 Euler steps.
PRACTICE_TABLES: tuple[dict[str, dict[int, float]], ...] = (
    {
        "1-RF": {1: 1.46, 4: 0.75, 16: 0.29},
        "distilled": {1: 0.36, 4: 1.18, 16: 1.65},
        "Bezier, tangent": {1: 1.52, 4: 0.79, 16: 0.41},
    },
    {
        "A": {1: 0.40, 4: 0.30, 16: 0.28},
        "B": {1: 0.35, 4: 0.36, 16: 0.50},
        "C": {1: 0.90, 4: 0.25, 16: 0.24},
    },
)


def _validate(table: Table, *steps: int) -> str | None:
    if not table:
        return "the table is empty"
    for model, row in table.items():
        missing = [s for s in steps if s not in row]
        if missing:
            return f"the table's row {model!r} has no entry for {missing} step(s)"
    return None


def check_best_at(
    fn: Callable[[Table, int], str], table: Table | None = None, steps: int | None = None
) -> CheckResult:
    """Check ``fn(table, steps)`` names the model with the lowest W2 at ``steps``.

    Without ``table``: every :data:`PRACTICE_TABLES` at 1, 4 and 16 steps.
    """
    if table is None:
        for practice in PRACTICE_TABLES:
            for n in (1, 4, 16):
                result = check_best_at(fn, practice, n)
                if not result.passed:
                    return result
        return result
    if steps is None:
        raise ValueError("check_best_at: give the number of steps with the table")
    name = "reading a table: the best model"
    problem = _validate(table, steps)
    if problem:
        raise ValueError(f"check_best_at: {problem}")
    got = attempt(name, fn, table, steps)
    if isinstance(got, CheckResult):
        return got
    best = min(table, key=lambda m: table[m][steps])
    if got == best:
        return CheckResult.ok(name, f"{best!r} has the lowest W2 at {steps} step(s).")
    if got not in table:
        return CheckResult.fail(name, f"{got!r} is not a row of the table: {list(table)}.")
    worst = max(table, key=lambda m: table[m][steps])
    hint = " That is the highest W2: lower is better." if got == worst else ""
    return CheckResult.fail(
        name,
        f"{got!r} has W2 {table[got][steps]:.3f} at {steps} step(s), but {best!r} has "
        f"{table[best][steps]:.3f}.{hint}",
    )


def check_worse_with_more_steps(
    fn: Callable[[Table, int, int], Collection[str]],
    table: Table | None = None,
    few: int = 1,
    many: int = 16,
) -> CheckResult:
    """Check ``fn(table, few, many)`` returns the models whose W2 grows from ``few`` to ``many``.

    Without ``table``: every :data:`PRACTICE_TABLES` from 1 to 4 and from 1 to 16 steps.
    """
    if table is None:
        for practice in PRACTICE_TABLES:
            for a, b in ((1, 4), (1, 16)):
                result = check_worse_with_more_steps(fn, practice, a, b)
                if not result.passed:
                    return result
        return result
    name = "reading a table: more steps, worse samples"
    problem = _validate(table, few, many)
    if problem:
        raise ValueError(f"check_worse_with_more_steps: {problem}")
    got = attempt(name, fn, table, few, many)
    if isinstance(got, CheckResult):
        return got
    if isinstance(got, str) or not isinstance(got, Collection):
        return CheckResult.fail(name, "return a set (or list) of model names.")
    want = {m for m, row in table.items() if row[many] > row[few]}
    answer = set(got)
    if answer == want:
        return CheckResult.ok(name, f"{sorted(want)} get worse from {few} to {many} steps.")
    if answer == {m for m in table if m not in want}:
        return CheckResult.fail(
            name, "you returned the models that get *better*: W2 is a distance, lower is better."
        )
    parts = []
    if answer - want:
        parts.append(f"{sorted(answer - want)} do not get worse")
    if want - answer:
        parts.append(f"{sorted(want - answer)} are missing")
    return CheckResult.fail(name, "; ".join(parts) + f" (compare W2 at {few} and {many} steps).")
