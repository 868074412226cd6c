"""The implement-and-train checks: a right answer passes, a stub is "not implemented yet", and
each usual mistake fails with a message that names it."""

from __future__ import annotations

import torch

from bezkit.exercises import CheckResult, Verdict
from bezkit.exercises.training import check_count_crossings, check_fm_loss, check_train_step


def stub(*args):
    raise NotImplementedError


def assert_fails(result: CheckResult, *fragments: str) -> None:
    assert result.status == Verdict.FAILED, result
    for fragment in fragments:
        assert fragment in result.message, result.message


def assert_passes(result: CheckResult) -> None:
    assert result.passed, result


def assert_todo(result: CheckResult) -> None:
    assert result.status == Verdict.NOT_IMPLEMENTED, result


# --- 1.3 the flow-matching loss -----------------------------------------------------------------


def fm_loss(model, x0, x1, t):
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    return ((model(xt, t) - (x1 - x0)) ** 2).mean()


def test_fm_loss_right_passes_and_stub_is_todo():
    assert_passes(check_fm_loss(fm_loss))
    assert_todo(check_fm_loss(stub))


def test_fm_loss_mistakes_are_named():
    def at_x0(model, x0, x1, t):
        return ((model(x0, t) - (x1 - x0)) ** 2).mean()

    def swapped(model, x0, x1, t):
        xt = t[:, None] * x0 + (1 - t)[:, None] * x1
        return ((model(xt, t) - (x1 - x0)) ** 2).mean()

    def flipped(model, x0, x1, t):
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        return ((model(xt, t) - (x0 - x1)) ** 2).mean()

    def summed(model, x0, x1, t):
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        return ((model(xt, t) - (x1 - x0)) ** 2).sum(1).mean()

    def absolute(model, x0, x1, t):
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        return (model(xt, t) - (x1 - x0)).abs().mean()

    def detached(model, x0, x1, t):
        return fm_loss(model, x0, x1, t).item()

    def column_t(model, x0, x1, t):
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        return ((model(xt, t[:, None]) - (x1 - x0)) ** 2).mean()

    assert_fails(check_fm_loss(at_x0), "evaluated the model at X0")
    assert_fails(check_fm_loss(swapped), "weights of X_t are swapped")
    assert_fails(check_fm_loss(flipped), "not X0 - X1")
    assert_fails(check_fm_loss(summed), "summed over the 2 coordinates")
    assert_fails(check_fm_loss(absolute), "Square the errors")
    assert_fails(check_fm_loss(detached), "connected to the model")
    assert_fails(check_fm_loss(column_t), "t of shape (n,)")


# --- 1.4 one training step ----------------------------------------------------------------------


def train_step(model, optimizer, x0, x1, generator):
    t = torch.rand(len(x0), generator=generator)
    loss = fm_loss(model, x0, x1, t)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_train_step_right_passes_in_float32_or_float64_times():
    assert_passes(check_train_step(train_step))

    def float64_times(model, optimizer, x0, x1, generator):
        t = torch.rand(len(x0), generator=generator, dtype=x0.dtype)
        loss = fm_loss(model, x0, x1, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    assert_passes(check_train_step(float64_times))
    assert_todo(check_train_step(stub))


def test_train_step_mistakes_are_named():
    def no_zero_grad(model, optimizer, x0, x1, generator):
        loss = fm_loss(model, x0, x1, torch.rand(len(x0), generator=generator))
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_step(model, optimizer, x0, x1, generator):
        loss = fm_loss(model, x0, x1, torch.rand(len(x0), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        return loss.item()

    def no_backward(model, optimizer, x0, x1, generator):
        loss = fm_loss(model, x0, x1, torch.rand(len(x0), generator=generator))
        optimizer.step()
        return loss.item()

    def uphill(model, optimizer, x0, x1, generator):
        loss = fm_loss(model, x0, x1, torch.rand(len(x0), generator=generator))
        optimizer.zero_grad()
        (-loss).backward()
        optimizer.step()
        return loss.item()

    def own_times(model, optimizer, x0, x1, generator):
        loss = fm_loss(model, x0, x1, torch.rand(len(x0)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def loss_after(model, optimizer, x0, x1, generator):
        t = torch.rand(len(x0), generator=generator)
        train_step_loss = fm_loss(model, x0, x1, t)
        optimizer.zero_grad()
        train_step_loss.backward()
        optimizer.step()
        return fm_loss(model, x0, x1, t).item()

    assert_fails(check_train_step(no_zero_grad), "optimizer.zero_grad()")
    assert_fails(check_train_step(no_step), "optimizer.step()")
    assert_fails(check_train_step(no_backward), "none of this batch", "loss.backward()")
    assert_fails(check_train_step(uphill), "uphill")
    assert_fails(check_train_step(own_times), "generator=generator")
    assert_fails(check_train_step(loss_after), "before the step")


# --- 2.3 counting crossing pairs ----------------------------------------------------------------


def cross(a, b, c, d):
    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0


def count_crossings(x0, x1):
    n = len(x0)
    return sum(bool(cross(x0[i], x1[i], x0[j], x1[j])) for i in range(n) for j in range(i + 1, n))


def test_count_crossings_right_passes_and_mistakes_are_named():
    assert_passes(check_count_crossings(count_crossings))
    assert_todo(check_count_crossings(stub))

    def twice(x0, x1):
        n = len(x0)
        return sum(
            bool(cross(x0[i], x1[i], x0[j], x1[j])) for i in range(n) for j in range(n) if i != j
        )

    def segments(x0, x1):
        n = len(x0)
        return sum(
            any(bool(cross(x0[i], x1[i], x0[j], x1[j])) for j in range(n) if j != i)
            for i in range(n)
        )

    assert_fails(check_count_crossings(twice), "counted twice")
    assert_fails(check_count_crossings(segments), "cross at least one other")


# --- 3.4 the secant target ----------------------------------------------------------------------


def point(points, t):
    from math import comb

    n = points.shape[0] - 1
    return sum(comb(n, i) * (1 - t) ** (n - i) * t**i * points[i] for i in range(n + 1))


def secant(points, t, steps):
    i = min(int(t * steps), steps - 1)
    return steps * (point(points, (i + 1) / steps) - point(points, i / steps))


def test_secant_target_right_passes_and_mistakes_are_named():
    from bezkit.exercises import bezier_tangent
    from bezkit.exercises.targets import check_secant_target

    assert_passes(check_secant_target(secant))
    assert_todo(check_secant_target(stub))

    def no_division(points, t, steps):
        return secant(points, t, steps) / steps

    def from_t(points, t, steps):
        return (point(points, t + 1 / steps) - point(points, t)) * steps

    def rounded(points, t, steps):
        i = min(round(t * steps), steps - 1)
        return steps * (point(points, (i + 1) / steps) - point(points, i / steps))

    assert_fails(check_secant_target(lambda p, t, n: bezier_tangent(p, t)), "tangent B'(t)")
    assert_fails(check_secant_target(no_division), "1/N of the secant")
    assert_fails(check_secant_target(from_t), "interval [t, t + h]")
    assert_fails(check_secant_target(rounded), "rounded t N")


# --- 4.4 the Bezier distillation loss -----------------------------------------------------------


def distill_loss(student, teacher, x0, x1, t, *, guide=None, target="endpoint", no_grad=True):
    zero = torch.zeros_like(t)
    if no_grad:
        with torch.no_grad():
            v = teacher(x0, zero)
    else:
        v = teacher(x0, zero)
    g = x0 + 0.5 * v if guide is None else guide(x0, v)
    s = t[:, None]
    b = (1 - s) ** 2 * x0 + 2 * s * (1 - s) * g + s**2 * x1
    tangent = 2 * (1 - s) * (g - x0) + 2 * s * (x1 - g)
    want = (x1 - b) / (1 - s) if target == "endpoint" else tangent
    return ((student(b, t) - want) ** 2).mean()


def test_bezier_distill_loss_right_passes_and_mistakes_are_named():
    from bezkit.exercises.targets import check_bezier_distill_loss

    assert_passes(check_bezier_distill_loss(distill_loss))
    assert_todo(check_bezier_distill_loss(stub))

    def linear(student, teacher, x0, x1, t):
        teacher(x0, torch.zeros_like(t))
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        return ((student(xt, t) - (x1 - xt) / (1 - t)[:, None]) ** 2).mean()

    def no_teacher(student, teacher, x0, x1, t):
        return distill_loss(student, lambda x, s: torch.zeros_like(x), x0, x1, t)

    def teacher_at_half(student, teacher, x0, x1, t):
        return distill_loss(student, lambda x, s: teacher(x, s + 0.5), x0, x1, t)

    wrong = {
        "not the velocity": lambda *a: distill_loss(*a, guide=lambda x0, v: v),
        "not a full step": lambda *a: distill_loss(*a, guide=lambda x0, v: x0 + v),
        "tangent target": lambda *a: distill_loss(*a, target="tangent"),
        "torch.no_grad()": lambda *a: distill_loss(*a, no_grad=False),
        "straight line": linear,
        "comes from the teacher": no_teacher,
        "t = 0": teacher_at_half,
    }
    for fragment, fn in wrong.items():
        assert_fails(check_bezier_distill_loss(fn), fragment)


# --- 6.3 the B-DENSE loss -----------------------------------------------------------------------


def bdense(model, trajectory, k, *, rows=None, reduce="mean", last_only=False):
    n_steps = trajectory.shape[0] - 1
    z0 = trajectory[0]
    out = model(z0, torch.zeros(z0.shape[0], dtype=z0.dtype), branches=True)
    rows = rows or [n_steps * j // k for j in range(1, k + 1)]
    sq = (out - trajectory[rows].transpose(0, 1)) ** 2
    if last_only:
        return ((out[:, -1] - trajectory[-1]) ** 2).mean()
    return sq.mean() if reduce == "mean" else sq.mean(dim=(0, 2)).sum()


def test_bdense_loss_right_passes_and_mistakes_are_named():
    from bezkit.exercises.targets import check_bdense_loss
    from bezkit.methods import BDenseLoss

    assert_passes(check_bdense_loss(bdense))
    assert_todo(check_bdense_loss(stub))

    def early(model, trajectory, k):
        n_steps = trajectory.shape[0] - 1
        return bdense(model, trajectory, k, rows=[n_steps * (j - 1) // k for j in range(1, k + 1)])

    def restart_input(model, trajectory, k):
        x = trajectory[1]
        return (model(x, torch.zeros(x.shape[0], dtype=x.dtype), branches=True) ** 2).mean()

    assert_fails(check_bdense_loss(early), "one branch early")
    assert_fails(check_bdense_loss(lambda m, tr, k: bdense(m, tr, k, last_only=True)), "plain")
    assert_fails(check_bdense_loss(lambda m, tr, k: bdense(m, tr, k, reduce="sum")), "summed")
    assert_fails(check_bdense_loss(restart_input), "from Z_0 at s = 0")
    # the reference is bezkit's BDenseLoss (default weights, no restarts) on the same states
    from bezkit.couplings.pairs import Pairs
    from bezkit.exercises.probes import ProbeBranches
    from bezkit.exercises.targets import bdense_loss

    traj = torch.cumsum(torch.randn(9, 5, 2, dtype=torch.float64), dim=0)
    model = ProbeBranches(4)
    pairs = Pairs(traj[0], traj[8], [traj[2], traj[4], traj[6]])
    library = BDenseLoss(4)(model, pairs, torch.Generator().manual_seed(0))
    assert torch.allclose(bdense_loss(model, traj, 4), library)


# --- 5.4 Holm's correction ----------------------------------------------------------------------


def test_holm_right_passes_and_slips_are_named():
    from bezkit.exercises.multiple_comparisons import check_holm, holm

    def right(p, alpha):
        m = len(p)
        out = [False] * m
        for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
            if p[i] > alpha / (m - rank):
                break
            out[i] = True
        return out

    assert_passes(check_holm(right))
    assert_todo(check_holm(stub))
    assert_fails(check_holm(lambda p, a: [v <= a for v in p]), "no correction")
    assert_fails(check_holm(lambda p, a: [v <= a / len(p) for v in p]), "Bonferroni")
    assert_fails(check_holm(lambda p, a: sorted(holm(p, a), reverse=True)), "sorted order")

    def no_stop(p, alpha):
        order = sorted(range(len(p)), key=lambda i: p[i])
        return [p[i] <= alpha / (len(p) - order.index(i)) for i in range(len(p))]

    def step_up(p, alpha):
        m = len(p)
        order = sorted(range(m), key=lambda i: p[i])
        out = [False] * m
        for rank in range(m - 1, -1, -1):
            if p[order[rank]] <= alpha / (m - rank):
                for i in order[: rank + 1]:
                    out[i] = True
                break
        return out

    assert_fails(check_holm(no_stop), "kept going")
    assert_fails(check_holm(step_up), "Hochberg")


def test_p_value_inverts_the_t_interval():
    from bezkit.exercises.multiple_comparisons import p_value
    from bezkit.experiments.statistics import paired_difference

    a = [[0.31, 0.33], [0.36, 0.39], [0.28, 0.30]]
    b = [[0.32, 0.35], [0.37, 0.39], [0.30, 0.31]]
    iv = paired_difference(a, b)
    from scipy import stats

    d = [sum(x - y for x, y in zip(ra, rb, strict=True)) / 2 for ra, rb in zip(a, b, strict=True)]
    assert abs(p_value(iv) - stats.ttest_1samp(d, 0.0).pvalue) < 1e-9


# --- 7.3 sliced W2 ------------------------------------------------------------------------------


def test_sliced_w2_right_passes_matches_bezkit_and_slips_are_named():
    from bezkit.exercises.sliced import check_sliced_w2, unit_directions
    from bezkit.metrics import sliced_wasserstein2

    def right(a, b, theta):
        pa, pb = (a @ theta).sort(dim=0).values, (b @ theta).sort(dim=0).values
        return float(((pa - pb) ** 2).mean().sqrt())

    assert_passes(check_sliced_w2(right))
    assert_todo(check_sliced_w2(stub))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 1, 8, 8, generator=g), torch.randn(30, 1, 8, 8, generator=g)
    theta = unit_directions(64, 256, seed=0)
    mine = right(a.flatten(1).double(), b.flatten(1).double(), theta)
    assert abs(mine - sliced_wasserstein2(a, b)) < 1e-9  # the lesson's directions are bezkit's

    def unsorted(a, b, theta):
        return float((((a @ theta) - (b @ theta)) ** 2).mean().sqrt())

    def one_side(a, b, theta):
        return float((((a @ theta).sort(dim=0).values - (b @ theta)) ** 2).mean().sqrt())

    assert_fails(check_sliced_w2(unsorted), "Sort the projections")
    assert_fails(check_sliced_w2(one_side), "not only one")
    assert_fails(check_sliced_w2(lambda a, b, t: right(a, b, t) ** 2), "square root")
