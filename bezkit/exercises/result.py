"""What a check function returns: a verdict that says what is wrong, not just ``False``.

Every check function of :mod:`bezkit.exercises` calls the student's code through :func:`attempt`:
a stub that still raises :class:`NotImplementedError` gives the verdict *not implemented yet*, any
other exception becomes a failed verdict naming it (the notebook cell itself never raises), and a
returned value is compared with the formula the exercise asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["CheckResult", "Verdict", "as_array", "attempt", "fmt"]


class Verdict:
    """The three outcomes of a check, as strings."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_IMPLEMENTED = "not implemented yet"


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one exercise check.

    ``exercise`` names it (``"3.1 Bezier tangent"``), ``status`` is one of :class:`Verdict`'s
    strings and ``message`` says why (what was expected, what was returned, the likely mistake).
    ``bool(result)`` is ``passed``; printing it (or leaving it as a cell's last expression) shows
    one short paragraph.
    """

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        """Whether the answer is right."""
        return self.status == Verdict.PASSED

    @property
    def implemented(self) -> bool:
        """Whether the exercise was attempted (its stub replaced)."""
        return self.status != Verdict.NOT_IMPLEMENTED

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = {Verdict.PASSED: "correct", Verdict.FAILED: "not yet right"}.get(
            self.status, self.status
        )
        return f"Exercise {self.exercise}: {mark}. {self.message}".rstrip()

    def __repr__(self) -> str:
        return str(self)

    @classmethod
    def ok(cls, exercise: str, message: str = "") -> CheckResult:
        """A passed check of ``exercise``, with what it verified."""
        return cls(exercise, Verdict.PASSED, message)

    @classmethod
    def fail(cls, exercise: str, message: str) -> CheckResult:
        """A failed check of ``exercise``; ``message`` says what is wrong."""
        return cls(exercise, Verdict.FAILED, message)

    @classmethod
    def todo(cls, exercise: str, name: str) -> CheckResult:
        """The check of an exercise whose stub ``name`` still raises ``NotImplementedError``."""
        return cls(
            exercise,
            Verdict.NOT_IMPLEMENTED,
            f"Replace the `raise NotImplementedError` in `{name}` by your code and run the "
            "check again.",
        )


def attempt(exercise: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or a :class:`CheckResult` when there is nothing to compare.

    A stub (a function that raises :class:`NotImplementedError`) gives the *not implemented yet*
    verdict; any other exception is the student's bug and becomes a failed verdict naming it.
    Callers test ``isinstance(value, CheckResult)`` and return it.
    """
    name = getattr(fn, "__name__", "your function")
    if not callable(fn):
        return CheckResult.fail(exercise, f"expected a function, got {type(fn).__name__}.")
    try:
        value = fn(*args)
    except NotImplementedError:
        return CheckResult.todo(exercise, name)
    except Exception as err:  # the student's bug, reported instead of raised
        return CheckResult.fail(exercise, f"`{name}` raised {type(err).__name__}: {err}")
    if isinstance(value, CheckResult):  # never expected from student code
        return CheckResult.fail(exercise, f"`{name}` returned a CheckResult, not its answer.")
    return value


def as_array(value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray | str:
    """``value`` (tensor, array, list, number) as a float64 array, or a string saying why not."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return f"it returned {type(value).__name__}, not an array of numbers"
    if shape is not None and array.shape != shape:
        return f"it returned shape {array.shape}, expected {shape}"
    return array


def fmt(value: Any, digits: int = 3) -> str:
    """A short, rounded rendering of a number or an array for messages."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.{digits}f}"
    return str(np.round(array, digits).tolist())
