"""The exercise checks: right answers pass, stubs say "not implemented yet", wrong answers say why."""

from __future__ import annotations

import math

import pytest
import torch

from bezkit.exercises import (
    QUESTIONS,
    CheckResult,
    Verdict,
    bezier_tangent,
    branch_states,
    check_best_at,
    check_bezier_tangent,
    check_branch_states,
    check_degree_elevation,
    check_endpoint_target,
    check_euler_sample,
    check_first_better_round,
    check_linear_path,
    check_paired_interval,
    check_prediction,
    check_reflow_pairs,
    check_segments_cross,
    check_verdict,
    check_worse_with_more_steps,
    degree_elevate,
    endpoint_target,
    first_better_round,
    show_question,
    verdict,
)
from bezkit.exercises.chains import PRACTICE_DIFFERENCES, PRACTICE_PAIRS
from bezkit.experiments.statistics import Interval, paired_difference
from bezkit.paths import BezierPath


def stub(*args):
    raise NotImplementedError


def assert_fails(result: CheckResult, *fragments: str) -> None:
    assert result.status == Verdict.FAILED, result
    assert not result
    for fragment in fragments:
        assert fragment in result.message, result.message


# --- lesson 03: Bezier ------------------------------------------------------------------------


def tangent_by_hand(points, t):
    n = points.shape[0] - 1
    d = points[1:] - points[:-1]
    w = torch.tensor(
        [math.comb(n - 1, i) * (1 - t) ** (n - 1 - i) * t**i for i in range(n)], dtype=torch.float64
    )
    return n * (w.to(points.dtype)[:, None] * d).sum(0)


def point_by_hand(points, t):
    n = points.shape[0] - 1
    w = torch.tensor(
        [math.comb(n, i) * (1 - t) ** (n - i) * t**i for i in range(n + 1)], dtype=torch.float64
    )
    return (w.to(points.dtype)[:, None] * points).sum(0)


def test_reference_tangent_matches_the_formula_and_finite_differences():
    points = torch.tensor([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0], [4.0, 1.0]], dtype=torch.float64)
    for t in (0.0, 0.4, 1.0):
        assert torch.allclose(bezier_tangent(points, t), tangent_by_hand(points, t))
    h = 1e-6
    fd = (point_by_hand(points, 0.4 + h) - point_by_hand(points, 0.4 - h)) / (2 * h)
    assert torch.allclose(bezier_tangent(points, 0.4), fd, atol=1e-6)


def test_bezier_tangent_check():
    assert check_bezier_tangent(tangent_by_hand).passed
    assert check_bezier_tangent(stub).status == Verdict.NOT_IMPLEMENTED
    assert "not implemented yet" in str(check_bezier_tangent(stub))
    n_missing = check_bezier_tangent(lambda p, t: tangent_by_hand(p, t) / (p.shape[0] - 1))
    assert_fails(n_missing, "factor n = 2", "expected [2.0, 7.0]")
    assert_fails(check_bezier_tangent(lambda p, t: -tangent_by_hand(p, t)), "sign is flipped")
    assert_fails(check_bezier_tangent(point_by_hand), "the point B(t)")
    assert_fails(check_bezier_tangent(lambda p, t: p[-1] - p[0]), "chord")
    assert_fails(check_bezier_tangent(lambda p, t: torch.zeros(3)), "shape (3,)")
    assert_fails(check_bezier_tangent(lambda p, t: 1 / 0), "ZeroDivisionError")
    assert_fails(check_bezier_tangent(lambda p, t: "left"), "not an array")


def test_endpoint_target_check():
    def right(p, t):
        return (p[-1] - point_by_hand(p, t)) / (1 - t)

    assert check_endpoint_target(right).passed
    assert torch.allclose(
        endpoint_target(torch.eye(3, 2, dtype=torch.float64), 0.3),
        right(torch.eye(3, 2, dtype=torch.float64), 0.3),
    )
    assert check_endpoint_target(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_endpoint_target(lambda p, t: p[-1] - point_by_hand(p, t)), "1 - t")
    assert_fails(check_endpoint_target(lambda p, t: p[-1] - p[0]), "only at t = 0", "t = 0.3")
    assert_fails(check_endpoint_target(lambda p, t: -right(p, t)), "sign")
    assert_fails(check_endpoint_target(tangent_by_hand), "tangent")
    with pytest.raises(ValueError, match="t < 1"):
        endpoint_target(torch.eye(3, 2), 1.0)


def test_degree_elevation_check():
    def swapped(p):
        n = p.shape[0] - 1
        w = torch.arange(1, n + 1, dtype=p.dtype)[:, None] / (n + 1)
        return torch.cat([p[:1], (1 - w) * p[:-1] + w * p[1:], p[-1:]])

    assert check_degree_elevation(degree_elevate).passed
    assert check_degree_elevation(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_degree_elevation(swapped), "weights are swapped")
    assert_fails(check_degree_elevation(lambda p: p), "shape (3, 2)")
    assert_fails(check_degree_elevation(lambda p: degree_elevate(p) + 1), "stay X0 and X1")
    # the reference elevation describes the same curve
    p = torch.tensor([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0]], dtype=torch.float64)
    q = degree_elevate(p)
    for t in (0.2, 0.7):
        assert torch.allclose(point_by_hand(p, t), point_by_hand(q, t))


# --- lessons 01 and 02: linear path, Euler, reflow pairs -----------------------------------


def euler(model, x0, steps):
    x = x0
    for i in range(steps):
        x = x + model(x, torch.full((x.shape[0],), i / steps, dtype=x.dtype)) / steps
    return x


def test_linear_path_check():
    def right(x0, x1, t):
        return (1 - t)[:, None] * x0 + t[:, None] * x1, x1 - x0

    assert check_linear_path(right).passed
    assert check_linear_path(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(
        check_linear_path(lambda a, b, t: (t[:, None] * a + (1 - t)[:, None] * b, b - a)),
        "swapped",
    )
    assert_fails(check_linear_path(lambda a, b, t: (right(a, b, t)[0], a - b)), "sign is flipped")
    assert_fails(check_linear_path(lambda a, b, t: right(a, b, t)[0]), "return two things")
    # a wrong shape names the value that has it
    assert_fails(
        check_linear_path(lambda a, b, t: (right(a, b, t)[0][:3], b - a)),
        "for X_t ",
        "(a batch of 6 points in 2D)",
    )
    assert_fails(
        check_linear_path(lambda a, b, t: (right(a, b, t)[0], (b - a)[:, :1])),
        "for the velocity ",
    )


def test_euler_sample_check():
    assert check_euler_sample(euler).passed
    assert check_euler_sample(stub).status == Verdict.NOT_IMPLEMENTED

    def end_times(model, x0, steps):
        x = x0
        for i in range(steps):
            x = x + model(x, torch.full((x.shape[0],), (i + 1) / steps, dtype=x.dtype)) / steps
        return x

    def scalar_t(model, x0, steps):
        return x0 + model(x0, torch.tensor(0.0))

    def twice(model, x0, steps):
        model(x0, torch.zeros(x0.shape[0], dtype=x0.dtype))
        return euler(model, x0, steps)

    assert_fails(check_euler_sample(end_times), "end of each step")
    assert_fails(check_euler_sample(scalar_t), "t of shape (n,)")
    assert_fails(check_euler_sample(twice), "called the model 2 times")
    assert_fails(
        check_euler_sample(lambda m, x, s: euler(m, x, 1) if s > 1 else euler(m, x, s)),
        "model 1 times",
    )


def test_euler_sample_check_names_a_missing_h_and_a_frozen_state():
    """Issue 20: these mistakes call the model at the right times, so the times are no hint."""

    def times(steps, x):
        return [torch.full((x.shape[0],), i / steps, dtype=x.dtype) for i in range(steps)]

    def no_h(model, x0, steps):
        x = x0
        for t in times(steps, x0):
            x = x + model(x, t)
        return x

    def at_x0(model, x0, steps):
        x = x0
        for t in times(steps, x0):
            x = x + model(x0, t) / steps
        return x

    def other(model, x0, steps):  # a wrong update at the right times
        x = x0
        for t in times(steps, x0):
            x = x - model(x, t) / steps
        return x

    for wrong, fragment in (
        (no_h, "step size h = 1/N"),
        (at_x0, "at x0 at every step"),
        (other, "The times i/N are right"),
    ):
        result = check_euler_sample(wrong)
        assert_fails(result, fragment)
        assert "You called the model at t" not in result.message


def test_reflow_pairs_check():
    assert check_reflow_pairs(lambda m, x, s: (x, euler(m, x, s))).passed
    assert check_reflow_pairs(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(
        check_reflow_pairs(lambda m, x, s: (x, m(x, torch.zeros(x.shape[0], dtype=x.dtype)))),
        "velocity v(X0, 0)",
    )
    assert_fails(check_reflow_pairs(lambda m, x, s: (x, euler(m, x, 1))), "one Euler step")
    assert_fails(check_reflow_pairs(lambda m, x, s: (x + 1, euler(m, x, s))), "source points")
    assert_fails(check_reflow_pairs(lambda m, x, s: euler(m, x, s)), "return the pair (x0, x1)")
    assert_fails(check_reflow_pairs(lambda m, x, s: (x, euler(m, x, s)[:2])), "for x1 ")
    assert_fails(check_reflow_pairs(lambda m, x, s: (x[:, 0], euler(m, x, s))), "for x0 ")


# --- lesson 02: crossing test ----------------------------------------------------------------


def cross_right(a, b, c, d):
    def orient(p, q, r):
        return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0


def test_segments_cross_check():
    assert check_segments_cross(cross_right).passed
    assert check_segments_cross(stub).status == Verdict.NOT_IMPLEMENTED

    def lines(a, b, c, d):  # the infinite lines: cross unless parallel
        r, s = b - a, d - c
        return abs(float(r[0] * s[1] - r[1] * s[0])) > 1e-12

    def closed(a, b, c, d):  # counts touching end points
        def orient(p, q, r):
            return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

        return orient(a, b, c) * orient(a, b, d) <= 0 and orient(c, d, a) * orient(c, d, b) <= 0

    assert_fails(check_segments_cross(lines), "infinite lines")
    assert_fails(check_segments_cross(closed), "a T", "strict")
    assert_fails(check_segments_cross(lambda *args: True), "parallel")
    assert_fails(check_segments_cross(lambda *args: [1, 2]), "True or False")


# --- lesson 06: branch states ----------------------------------------------------------------


def test_branch_states_check():
    assert check_branch_states(branch_states).passed
    assert check_branch_states(stub).status == Verdict.NOT_IMPLEMENTED
    from_zero = check_branch_states(
        lambda traj, k: torch.stack([traj[(traj.shape[0] - 1) * j // k] for j in range(k)])
    )
    assert_fails(from_zero, "Z_0 is the input", "[0]", "[8]")
    every_k = check_branch_states(
        lambda traj, k: torch.stack([traj[k * j] for j in range(1, k + 1)])
    )
    assert_fails(every_k, "N j / K")
    as_list = check_branch_states(lambda traj, k: list(branch_states(traj, k)))
    assert as_list.passed
    with pytest.raises(ValueError, match="multiple of K"):
        branch_states(torch.zeros(8, 2, 2), 3)


# --- tables and predictions -------------------------------------------------------------------

TABLE = {"a": {1: 0.5, 4: 0.3}, "b": {1: 0.4, 4: 0.6}, "c": {1: 0.9, 4: 0.95}}


def test_table_checks():
    best = check_best_at(lambda t, s: min(t, key=lambda m: t[m][s]), TABLE, 1)
    assert best.passed and "'b'" in best.message
    assert_fails(check_best_at(lambda t, s: "c", TABLE, 1), "lower is better")
    assert_fails(check_best_at(lambda t, s: "zzz", TABLE, 1), "not a row")
    assert check_best_at(stub, TABLE, 1).status == Verdict.NOT_IMPLEMENTED
    with pytest.raises(ValueError, match="no entry for \\[16\\]"):
        check_best_at(lambda t, s: "a", TABLE, 16)

    def worse(t, few, many):
        return {m for m, row in t.items() if row[many] > row[few]}

    assert check_worse_with_more_steps(worse, TABLE, 1, 4).passed
    assert_fails(check_worse_with_more_steps(lambda t, f, m: {"a"}, TABLE, 1, 4), "better")
    assert_fails(
        check_worse_with_more_steps(lambda t, f, m: {"b"}, TABLE, 1, 4), "['c'] are missing"
    )
    assert_fails(check_worse_with_more_steps(lambda t, f, m: "b", TABLE, 1, 4), "set")


def test_predictions(capsys):
    for qid, q in QUESTIONS.items():
        right = check_prediction(qid, lambda q=q: q.answer)
        assert right.passed and q.explanation in right.message
        wrong = next(letter for letter in q.choices if letter != q.answer)
        assert_fails(check_prediction(qid, lambda w=wrong: f"({w.upper()})"), f"({q.answer})")
        assert check_prediction(qid, stub).status == Verdict.NOT_IMPLEMENTED
        show_question(qid)
        assert q.prompt in capsys.readouterr().out
    assert_fails(check_prediction("01.one-step", lambda: "z"), "one letter")
    with pytest.raises(KeyError, match="no question"):
        check_prediction("nope", lambda: "a")


def test_one_step_question_fact():
    """The fact behind 01.one-step: with independent pairs, v*(x, 0) = E[X1] - x."""
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(200_000, 2, generator=g) + torch.tensor([3.0, -1.0])
    x0 = torch.randn(200_000, 2, generator=g)
    near = (x0 - torch.tensor([0.5, 0.5])).norm(dim=1) < 0.1  # X_0 close to a point x
    landing = (x0[near] + (x1[near] - x0[near]).mean(0)).mean(0)
    assert torch.allclose(landing, torch.tensor([3.0, -1.0]), atol=0.1)


def test_check_result_rendering():
    ok = CheckResult.ok("9.9 demo", "fine.")
    assert bool(ok) and str(ok) == "Exercise 9.9 demo: correct. fine."
    todo = CheckResult.todo("9.9 demo", "f")
    assert not todo and not todo.implemented and "`f`" in repr(todo)


def test_t0_question_fact():
    """The fact behind 04.t0-target: the endpoint target at t = 0 is X1 - X0 for any guide."""
    g = torch.Generator().manual_seed(1)
    x0, x1, guide = (torch.randn(50, 2, generator=g) for _ in range(3))
    s = BezierPath(2).sample(x0, x1, torch.zeros(50), (guide,))
    from bezkit.paths import regression_target

    assert torch.allclose(regression_target(s, "endpoint"), x1 - x0, atol=1e-6)


# --- lessons 04, 06, 07: interpolated guide, hop times, images; practice tables ---------------


def test_interpolated_guide_check():
    from bezkit.exercises import check_interpolated_guide, interpolated_guide

    assert check_interpolated_guide(interpolated_guide).passed
    assert check_interpolated_guide(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_interpolated_guide(lambda z, s, a, b: z), "control")
    assert_fails(
        check_interpolated_guide(lambda z, s, a, b: 2 * interpolated_guide(z, s, a, b)), "twice"
    )
    assert_fails(
        check_interpolated_guide(lambda z, s, a, b: z - (1 - s) ** 2 * a - s**2 * b),
        "Bernstein weight",
        "instead of Z",
    )
    # the reference guide makes the quadratic pass through z at s
    g = torch.Generator().manual_seed(3)
    x0, x1, z = (torch.randn(4, 2, generator=g, dtype=torch.float64) for _ in range(3))
    guide = interpolated_guide(z, 0.3, x0, x1)
    at = BezierPath(2).point(x0, x1, torch.full((4,), 0.3, dtype=torch.float64), (guide,))
    assert torch.allclose(at, z)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        interpolated_guide(z, 1.0, x0, x1)


def test_hop_times_check():
    from bezkit.exercises import check_hop_times, hop_times

    assert hop_times(8, 4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert check_hop_times(hop_times).passed
    assert check_hop_times(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_hop_times(lambda k, h: [i / h for i in range(1, h + 1)]), "expected the")
    assert_fails(check_hop_times(lambda k, h: [i / k for i in range(h + 1)]), "expected [0.0, 1.0]")
    assert_fails(check_hop_times(lambda k, h: [i / h for i in range(h + 1)]), "raise ValueError")


def test_image_checks():
    from bezkit.exercises import check_one_step, check_to_pixels

    assert check_to_pixels(lambda v: v / 8 - 1).passed
    assert check_to_pixels(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_to_pixels(lambda v: v / 16), "[0, 1]")
    assert_fails(check_to_pixels(lambda v: v / 16 - 1), "Divide by 8")

    def right(model, noise):
        return noise + model(noise, torch.zeros(noise.shape[0], dtype=noise.dtype))

    assert check_one_step(right).passed
    assert check_one_step(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(
        check_one_step(lambda m, x: m(x, torch.zeros(x.shape[0], dtype=x.dtype))), "the velocity"
    )
    assert_fails(
        check_one_step(lambda m, x: x + m(x, torch.ones(x.shape[0], dtype=x.dtype))), "t = 1"
    )
    assert_fails(check_one_step(lambda m, x: x + m(x, torch.tensor(0.0))), "shape (n,)")


def test_practice_tables_are_used_without_a_table():
    def best(t, s):
        return min(t, key=lambda m: t[m][s])

    def worse(t, few, many):
        return {m for m, row in t.items() if row[many] > row[few]}

    assert check_best_at(best).passed
    assert check_worse_with_more_steps(worse).passed
    # right on the first practice table at one step only: caught on the second table
    assert_fails(check_best_at(lambda t, s: "distilled" if "distilled" in t else "A"))
    assert_fails(check_worse_with_more_steps(lambda t, f, m: {"distilled"}))


# --- lesson 05: chains --------------------------------------------------------------------------


def paired_by_hand(a, b):
    from scipy import stats

    d = [
        sum(x - y for x, y in zip(ra, rb, strict=True)) / len(ra)
        for ra, rb in zip(a, b, strict=True)
    ]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_paired_interval_check():
    from scipy import stats

    assert check_paired_interval(paired_by_hand).passed
    assert check_paired_interval(lambda a, b: Interval(*paired_by_hand(a, b), len(a))).passed
    assert check_paired_interval(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_paired_interval(lambda a, b: paired_by_hand(b, a)), "sign is reversed")

    def normal(a, b):
        mean, low, _ = paired_by_hand(a, b)
        z = 1.96 * (mean - low) / stats.t.ppf(0.975, len(a) - 1)
        return mean, mean - z, mean + z

    assert_fails(check_paired_interval(normal), "Student's t")

    def draws_as_seeds(a, b):
        flat = [[x - y] for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
        return paired_by_hand(flat, [[0.0]] * len(flat))

    assert_fails(check_paired_interval(draws_as_seeds), "average each seed's draws first")
    assert_fails(check_paired_interval(lambda a, b: 0.1), "three numbers")
    assert_fails(check_paired_interval(lambda a, b: (0.0, 0.0, 0.0)), "expected")
    # the reference agrees with the experiment's own statistics
    a, b = PRACTICE_PAIRS[0]
    want = paired_difference(a, b)
    assert paired_by_hand(a, b) == pytest.approx((want.mean, want.low, want.high))


def test_verdict_check():
    def right(low, high):
        return "yes" if high < 0 else "no" if low > 0 else "not distinguishable"

    assert check_verdict(right).passed
    assert check_verdict(lambda lo, hi: "No (worse)" if lo > 0 else right(lo, hi)).passed
    assert check_verdict(stub).status == Verdict.NOT_IMPLEMENTED
    assert_fails(check_verdict(lambda lo, hi: "yes" if lo > 0 else right(lo, hi)), "lower W2")
    assert_fails(check_verdict(lambda lo, hi: "yes" if hi <= 0 else right(lo, hi)), "reaches")
    assert_fails(check_verdict(lambda lo, hi: "maybe"), "'not distinguishable'")
    assert [verdict(lo, hi) for lo, hi in ((-2, -1), (1, 2), (-1, 1), (-1, 0))] == [
        "yes", "no", "not distinguishable", "not distinguishable",
    ]  # fmt: skip


def test_first_better_round_check():
    def right(differences):
        return next((k for k in sorted(differences) if differences[k].high < 0), None)

    assert check_first_better_round(right).passed
    assert check_first_better_round(stub).status == Verdict.NOT_IMPLEMENTED
    by_mean = check_first_better_round(
        lambda d: next((k for k in sorted(d) if d[k].mean < 0), None)
    )
    assert_fails(by_mean, "A negative mean is not enough")
    assert_fails(check_first_better_round(lambda d: max(d)), "expected")
    assert_fails(check_first_better_round(lambda d: 3), "return None")
    assert [first_better_round(t) for t in PRACTICE_DIFFERENCES] == [3, None, None]
    # a run's own table is checked after the practice ones
    table = {1: Interval(0.0, 0.0, 0.0, 3), 2: Interval(-0.05, -0.08, -0.02, 3)}
    assert check_first_better_round(right, table).passed
    wrong_on_the_run = check_first_better_round(lambda d: 1 if len(d) == 2 else right(d), table)
    assert_fails(wrong_on_the_run, "expected 2")
    with pytest.raises(ValueError, match="empty"):
        check_first_better_round(right, {})
