"""Check for lesson 02: a crossing test for two straight segments.

``segments_cross(a, b, c, d) -> bool``: do the segments ``a -> b`` and ``c -> d`` (points of shape
``(2,)``) *properly* cross, i.e. meet at one point inside both? The reference is the orientation
test of :func:`bezkit.metrics.segments_cross`: the segments cross when ``c`` and ``d`` lie strictly
on opposite sides of the line ``ab`` and ``a`` and ``b`` strictly on opposite sides of ``cd``.
Touching at an end point and collinear overlaps do not count (they have measure zero for
continuous data).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from bezkit.exercises.result import CheckResult, attempt
from bezkit.metrics import segments_cross as reference_cross

__all__ = ["CROSSING_CASES", "Point", "check_segments_cross"]

#: Named cases ``(description, a, b, c, d)`` every answer must get right, the hard ones first.
Point = tuple[float, float]
CROSSING_CASES: tuple[tuple[str, Point, Point, Point, Point], ...] = (
    ("an X through the origin", (-1, -1), (1, 1), (-1, 1), (1, -1)),
    ("two parallel segments", (0, 0), (2, 0), (0, 1), (2, 1)),
    ("lines that cross beyond the end of one segment", (0, 0), (1, 0), (2, -1), (2, 1)),
    ("lines that cross beyond the ends of both segments", (0, 0), (1, 1), (3, 0), (2, 1)),
    ("a T: the end of one touches the middle of the other", (-1, 0), (1, 0), (0, 0), (0, 1)),
    ("a diagonal cross far from the origin", (10, 10), (12, 13), (10, 13), (12, 10)),
    ("a narrow crossing", (0, 0), (4, 1), (0, 1), (4, 0.5)),
)


def _hint(description: str, expected: bool) -> str:
    if "beyond" in description and not expected:
        return " You may be testing the infinite lines: check that the meeting point lies on both segments."
    if "parallel" in description:
        return " Parallel segments never cross (watch for a division by zero)."
    if "T" in description.split(":")[0]:
        return " Touching at an end point is not a proper crossing: use strict inequalities."
    return ""


def check_segments_cross(fn: Callable[[Tensor, Tensor, Tensor, Tensor], bool]) -> CheckResult:
    """Check ``fn(a, b, c, d)`` on the named cases, both orders, and 200 seeded random pairs."""
    name = "2.1 crossing test"

    def tensor(p: Point) -> Tensor:
        return torch.tensor(p, dtype=torch.float64)

    cases: list[tuple[str, Tensor, Tensor, Tensor, Tensor]] = [
        (d, tensor(a), tensor(b), tensor(c), tensor(e)) for d, a, b, c, e in CROSSING_CASES
    ]
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(200, 4, 2, generator=g, dtype=torch.float64)
    cases += [(f"random segments #{i}", p[0], p[1], p[2], p[3]) for i, p in enumerate(pts)]
    for description, a, b, c, d in cases:
        expected = bool(reference_cross(a, b, c, d))
        for args, order in (((a, b, c, d), ""), ((c, d, a, b), " (segments swapped)")):
            got = attempt(name, fn, *(x.clone() for x in args))
            if isinstance(got, CheckResult):
                return got
            if isinstance(got, Tensor) and got.numel() == 1:
                got = got.item()
            if not isinstance(got, bool | np.bool_ | int) or got not in (0, 1):
                return CheckResult.fail(name, f"return True or False, not {got!r}.")
            answer = bool(got)
            if answer != expected:
                coords = ", ".join(str([round(float(v), 2) for v in x]) for x in args)
                return CheckResult.fail(
                    name,
                    f"for {description}{order}, a, b, c, d = {coords}, you said {answer}, expected "
                    f"{expected}.{_hint(description, expected)}",
                )
    return CheckResult.ok(
        name, f"{len(CROSSING_CASES)} named cases and 200 random pairs of segments agree."
    )
