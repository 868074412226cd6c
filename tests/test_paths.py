"""Paths (METHODS.md sections 1 and 2): Bezier curves, guide placement, targets, time sampling."""

from __future__ import annotations

import math

import pytest
import torch

from bezkit.paths import (
    BezierPath,
    DiscreteTime,
    LinearPath,
    LogitNormalTime,
    UniformTime,
    UShapedTime,
    bernstein,
    distill_times,
    make_time_sampler,
    place_guides,
    regression_target,
)
from bezkit.paths.path_sample import PathSample

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=F64)


def pair(gen, n=64, d=3):
    return rand(gen, n, d), rand(gen, n, d)


def times(gen, n=64):
    return torch.rand(n, generator=gen, dtype=F64)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_endpoints_are_x0_and_x1(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    path = BezierPath(order)
    n = x0.shape[0]
    assert torch.equal(path.point(x0, x1, torch.zeros(n, dtype=F64), guides), x0)
    assert torch.equal(path.point(x0, x1, torch.ones(n, dtype=F64), guides), x1)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_tangent_matches_central_differences(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    path = BezierPath(order)
    t = 0.05 + 0.9 * times(gen)  # keep t +- h inside [0, 1]
    h = 1e-5
    fd = (path.point(x0, x1, t + h, guides) - path.point(x0, x1, t - h, guides)) / (2 * h)
    torch.testing.assert_close(path.tangent(x0, x1, t, guides), fd, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("order", [1, 3])
def test_tangent_at_endpoints_is_first_and_last_control_leg(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    pts = [x0, *guides, x1]
    path = BezierPath(order)
    n = x0.shape[0]
    d0 = path.tangent(x0, x1, torch.zeros(n, dtype=F64), guides)
    d1 = path.tangent(x0, x1, torch.ones(n, dtype=F64), guides)
    torch.testing.assert_close(d0, order * (pts[1] - pts[0]))
    torch.testing.assert_close(d1, order * (pts[-1] - pts[-2]))


def test_bernstein_weights_sum_to_one(gen):
    t = times(gen)
    for order in range(1, 7):
        w = bernstein(order, t)
        assert w.shape == (order + 1, t.numel())
        torch.testing.assert_close(w.sum(0), torch.ones_like(t))
        assert (w >= 0).all()


def test_quadratic_with_midpoint_guide_is_the_linear_path(gen):
    x0, x1 = pair(gen)
    t = times(gen)
    quad = BezierPath(2).sample(x0, x1, t, ((x0 + x1) / 2,))
    lin = LinearPath().sample(x0, x1, t)
    torch.testing.assert_close(quad.x_t, lin.x_t, rtol=0, atol=1e-14)
    torch.testing.assert_close(quad.dx_t, lin.dx_t, rtol=0, atol=1e-14)
    # and the linear path is (1-t) X0 + t X1 with velocity X1 - X0
    torch.testing.assert_close(lin.x_t, (1 - t)[:, None] * x0 + t[:, None] * x1)
    torch.testing.assert_close(lin.dx_t, x1 - x0)


def test_cubic_with_guides_at_thirds_is_the_linear_path(gen):
    x0, x1 = pair(gen)
    t = times(gen)
    guides = ((2 * x0 + x1) / 3, (x0 + 2 * x1) / 3)  # degree elevation twice
    cub = BezierPath(3).sample(x0, x1, t, guides)
    lin = LinearPath().sample(x0, x1, t)
    torch.testing.assert_close(cub.x_t, lin.x_t)
    torch.testing.assert_close(cub.dx_t, lin.dx_t)


def test_order_one_is_linear_path(gen):
    x0, x1 = pair(gen)
    t = times(gen)
    a, b = BezierPath(1).sample(x0, x1, t), LinearPath().sample(x0, x1, t)
    assert torch.equal(a.x_t, b.x_t) and torch.equal(a.dx_t, b.dx_t)
    assert LinearPath().order == 1 and LinearPath().num_guides == 0


def test_quadratic_and_cubic_explicit_formulas(gen):
    x0, x1 = pair(gen)
    g, g1, g2 = (rand(gen, *x0.shape) for _ in range(3))
    t = times(gen)[:, None]
    s = 1 - t
    quad = BezierPath(2).sample(x0, x1, t[:, 0], (g,))
    torch.testing.assert_close(quad.x_t, s**2 * x0 + 2 * t * s * g + t**2 * x1)
    torch.testing.assert_close(quad.dx_t, 2 * s * (g - x0) + 2 * t * (x1 - g))
    cub = BezierPath(3).sample(x0, x1, t[:, 0], (g1, g2))
    torch.testing.assert_close(
        cub.x_t, s**3 * x0 + 3 * s**2 * t * g1 + 3 * s * t**2 * g2 + t**3 * x1
    )
    torch.testing.assert_close(
        cub.dx_t, 3 * s**2 * (g1 - x0) + 6 * s * t * (g2 - g1) + 3 * t**2 * (x1 - g2)
    )


def test_path_works_on_image_shaped_data(gen):
    x0, x1 = rand(gen, 8, 3, 4, 4), rand(gen, 8, 3, 4, 4)
    g = rand(gen, 8, 3, 4, 4)
    t = times(gen, 8)
    sample = BezierPath(2).sample(x0, x1, t, (g,))
    tt = t[:, None, None, None]
    torch.testing.assert_close(sample.x_t, (1 - tt) ** 2 * x0 + 2 * tt * (1 - tt) * g + tt**2 * x1)


def test_quadratic_interpolate_passes_through_teacher_state(gen):
    x0, x1 = pair(gen)
    z = rand(gen, *x0.shape)
    s = 0.3
    (g,) = place_guides([z], [s], x0, x1, "interpolate")
    closed_form = (z - (1 - s) ** 2 * x0 - s**2 * x1) / (2 * s * (1 - s))
    torch.testing.assert_close(g, closed_form)
    at_s = BezierPath(2).point(x0, x1, torch.full((x0.shape[0],), s, dtype=F64), (g,))
    torch.testing.assert_close(at_s, z)


@pytest.mark.parametrize("times_", [(0.25, 0.75), (0.6, 0.2)])
def test_cubic_interpolate_passes_through_both_states(times_, gen):
    x0, x1 = pair(gen)
    z1, z2 = rand(gen, *x0.shape), rand(gen, *x0.shape)
    guides = place_guides([z1, z2], times_, x0, x1, "interpolate")
    path = BezierPath(3)
    n = x0.shape[0]
    for z, s in zip((z1, z2), times_):
        torch.testing.assert_close(path.point(x0, x1, torch.full((n,), s, dtype=F64), guides), z)


def test_interpolate_order_four_and_image_shapes(gen):
    x0, x1 = rand(gen, 5, 2, 3, 3), rand(gen, 5, 2, 3, 3)
    states = [rand(gen, *x0.shape) for _ in range(3)]
    ts = (0.2, 0.5, 0.9)
    guides = place_guides(states, ts, x0, x1, "interpolate")
    for z, s in zip(states, ts):
        at = BezierPath(4).point(x0, x1, torch.full((5,), s, dtype=F64), guides)
        torch.testing.assert_close(at, z)


def test_interpolate_on_the_chord_gives_the_degree_elevated_guides(gen):
    x0, x1 = pair(gen)
    s = 0.4
    z = (1 - s) * x0 + s * x1  # the teacher state lies on the straight line
    (g,) = place_guides([z], [s], x0, x1, "interpolate")
    torch.testing.assert_close(g, (x0 + x1) / 2)


def test_control_placement_returns_states_unchanged(gen):
    x0, x1 = pair(gen)
    z = rand(gen, *x0.shape)
    (g,) = place_guides([z], [0.5], x0, x1, "control")
    assert g is z


def test_bad_guide_placement_inputs(gen):
    x0, x1 = pair(gen)
    z = rand(gen, *x0.shape)
    with pytest.raises(ValueError, match="strictly inside"):
        place_guides([z], [1.0], x0, x1, "interpolate")
    with pytest.raises(ValueError, match="distinct"):
        place_guides([z, z], [0.5, 0.5], x0, x1, "interpolate")
    with pytest.raises(ValueError, match="2 teacher states but 1 guide times"):
        place_guides([z, z], [0.5], x0, x1)
    with pytest.raises(ValueError, match="teacher state 1 has shape"):
        place_guides([z[:, :2]], [0.5], x0, x1)
    with pytest.raises(ValueError, match="unknown guide placement"):
        place_guides([z], [0.5], x0, x1, "snap")


@pytest.mark.parametrize("order", [2, 3])
def test_endpoint_target_one_euler_step_lands_on_x1(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    t = times(gen)
    sample = BezierPath(order).sample(x0, x1, t, guides)
    target = regression_target(sample, "endpoint")
    landed = sample.x_t + (1 - t)[:, None] * target
    torch.testing.assert_close(landed, x1)
    # at t = 0 the endpoint target is the chord X1 - X0 (the distillation target)
    zero = BezierPath(order).sample(x0, x1, torch.zeros_like(t), guides)
    torch.testing.assert_close(regression_target(zero, "endpoint"), x1 - x0)
    # the tangent target is the tangent, and the two differ on a curved path
    assert torch.equal(regression_target(sample, "tangent"), sample.dx_t)
    assert not torch.allclose(target, sample.dx_t)


def test_endpoint_target_equals_tangent_on_linear_path(gen):
    x0, x1 = pair(gen)
    sample = LinearPath().sample(x0, x1, times(gen))
    torch.testing.assert_close(regression_target(sample, "endpoint"), sample.dx_t)


def endpoint_closed_form(points, t):
    """``sum_{i<n} C(n, i) (1-t)^(n-1-i) t^i (P_n - P_i)``, written out term by term."""
    n = len(points) - 1
    tt = t[:, None]
    return sum(
        math.comb(n, i) * (1 - tt) ** (n - 1 - i) * tt**i * (points[-1] - points[i])
        for i in range(n)
    )


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_endpoint_target_matches_closed_form_and_division(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    t = 0.95 * times(gen)  # away from 1 the division is accurate in float64
    sample = BezierPath(order).sample(x0, x1, t, guides)
    target = regression_target(sample, "endpoint")
    torch.testing.assert_close(target, endpoint_closed_form([x0, *guides, x1], t))
    torch.testing.assert_close(target, (x1 - sample.x_t) / (1 - t)[:, None])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_endpoint_target_is_exact_at_and_near_one(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    points = [x0, *guides, x1]
    path = BezierPath(order)
    n = x0.shape[0]
    # t = 1: only the last term survives, n (P_n - P_{n-1}) = B'(1)
    one = path.sample(x0, x1, torch.ones(n, dtype=F64), guides)
    target = regression_target(one, "endpoint")
    torch.testing.assert_close(target, order * (x1 - points[-2]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(target, one.dx_t)
    # t = 1 - 1e-6 in float32: the division would lose ~6 digits; the closed form keeps them
    t = torch.full((n,), 1 - 1e-6, dtype=F64)
    want = endpoint_closed_form(points, t)
    f32 = [p.float() for p in points]
    near = path.sample(f32[0], f32[-1], t.float(), f32[1:-1])
    got = regression_target(near, "endpoint")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_endpoint_target_errors_and_the_path_owns_its_targets(gen):
    x0, x1 = pair(gen)
    path = BezierPath(2)
    sample = path.sample(x0, x1, times(gen), (rand(gen, *x0.shape),))
    with pytest.raises(TypeError, match="t_max"):  # the deprecated argument is gone
        regression_target(sample, "endpoint", t_max=0.99)  # type: ignore[call-arg]
    for kind, grid in (("tangent", None), ("endpoint", None), ("secant", 4)):
        assert torch.equal(
            path.target(sample, kind, grid_steps=grid),
            regression_target(sample, kind, grid_steps=grid),
        )
    torch.testing.assert_close(
        path.target(sample, "endpoint"),
        path.endpoint_velocity(x0, x1, sample.t, sample.guides),
    )
    with pytest.raises(ValueError, match="not on this order-3 path"):
        BezierPath(3).target(sample, "endpoint")
    with pytest.raises(ValueError, match="unknown target 'velocity'"):
        regression_target(sample, "velocity")
    bare = PathSample(x0=x0, x1=x1, t=sample.t, x_t=sample.x_t, dx_t=sample.dx_t)
    with pytest.raises(ValueError, match="guide points"):
        regression_target(bare, "endpoint")
    assert torch.equal(regression_target(bare, "tangent"), sample.dx_t)


def secant_euler_states(path, x0, x1, guides, steps):
    """N Euler steps of the exact secant field from X0 along the pair's own curve: the states."""
    n = x0.shape[0]
    x, states = x0, []
    for i in range(steps):
        t = torch.full((n,), i / steps, dtype=x0.dtype)
        sample = path.sample(x0, x1, t, guides)
        x = x + regression_target(sample, "secant", grid_steps=steps) / steps
        states.append(x)
    return states


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 7])
def test_secant_euler_steps_trace_the_curve_grid_points(order, steps, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    path = BezierPath(order)
    states = secant_euler_states(path, x0, x1, guides, steps)
    for i, x in enumerate(states, start=1):
        t = torch.full((x0.shape[0],), i / steps, dtype=F64)
        torch.testing.assert_close(x, path.point(x0, x1, t, guides), rtol=0, atol=1e-12)
    torch.testing.assert_close(states[-1], x1, rtol=0, atol=1e-12)
    # in float32 too, to float32 precision
    f32 = [p.float() for p in (x0, x1, *guides)]
    last = secant_euler_states(path, f32[0], f32[1], tuple(f32[2:]), steps)[-1]
    torch.testing.assert_close(last.double(), x1, rtol=0, atol=2e-5)


def test_tangent_and_endpoint_euler_steps_leave_a_curved_path(gen):
    """What the secant fixes: on a quadratic, 2 Euler steps of the tangent or endpoint target
    (evaluated on the curve) miss ``B(1/2)`` and ``X1`` by closed-form amounts."""
    x0, x1 = pair(gen)
    g = rand(gen, *x0.shape)
    path, n = BezierPath(2), x0.shape[0]
    half = torch.full((n,), 0.5, dtype=F64)
    zero = torch.zeros(n, dtype=F64)
    bend = x0 + x1 - 2 * g  # B'' / 2
    tan = x0 + 0.5 * path.tangent(x0, x1, zero, (g,))
    torch.testing.assert_close(tan - path.point(x0, x1, half, (g,)), -bend / 4)
    tan = tan + 0.5 * path.tangent(x0, x1, half, (g,))
    torch.testing.assert_close(tan - x1, -bend / 2)  # N h^2 B''/2 with N = 2, h = 1/2
    end = x0 + 0.5 * path.endpoint_velocity(x0, x1, zero, (g,))
    torch.testing.assert_close(end, (x0 + x1) / 2)  # the chord, not the curve
    torch.testing.assert_close(end - path.point(x0, x1, half, (g,)), bend / 4)


def test_secant_with_one_step_is_the_chord_and_on_a_line_the_tangent(gen):
    x0, x1 = pair(gen)
    t0 = torch.zeros(x0.shape[0], dtype=F64)
    for order in (1, 2, 3, 4):
        guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
        sample = BezierPath(order).sample(x0, x1, t0, guides)
        got = regression_target(sample, "secant", grid_steps=1)
        torch.testing.assert_close(got, x1 - x0, rtol=0, atol=1e-13)
    t = times(gen)
    line = LinearPath().sample(x0, x1, t)
    for steps in (1, 2, 5):
        got = regression_target(line, "secant", grid_steps=steps)
        torch.testing.assert_close(got, line.dx_t, rtol=0, atol=1e-13)
        torch.testing.assert_close(got, regression_target(line, "tangent"))


@pytest.mark.parametrize("order", [2, 3, 4])
def test_secant_off_the_grid_is_the_divided_difference_to_the_next_grid_point(order, gen):
    x0, x1 = pair(gen)
    guides = tuple(rand(gen, *x0.shape) for _ in range(order - 1))
    path, steps = BezierPath(order), 4
    t = times(gen) * 0.999
    nxt = torch.floor(t * steps + 1) / steps
    want = (path.point(x0, x1, nxt, guides) - path.point(x0, x1, t, guides)) / (nxt - t)[:, None]
    got = path.secant_velocity(x0, x1, t, guides, steps=steps)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8)
    # a float just below a grid point counts as on it: the secant over [1/2, 3/4]
    below = torch.full((x0.shape[0],), 0.5 - 1e-9, dtype=F64)
    tangent = path.tangent(x0, x1, torch.full_like(below, 0.5), guides)
    secant = path.secant_velocity(x0, x1, below, guides, steps=steps)
    assert not torch.allclose(secant, tangent)
    at_one = torch.ones(x0.shape[0], dtype=F64)
    torch.testing.assert_close(
        path.secant_velocity(x0, x1, at_one, guides, steps=steps),
        path.tangent(x0, x1, at_one, guides),
    )


def test_secant_grid_times_in_float32_start_their_own_cell(gen):
    """``float32(1/3)`` is a grid point of the 3-step grid, whatever its rounding."""
    x0, x1 = (p.float() for p in pair(gen))
    g = rand(gen, *x0.shape).float()
    path = BezierPath(2)
    for i in range(3):
        t = torch.full((x0.shape[0],), i / 3, dtype=torch.float32)
        nxt = torch.full_like(t, (i + 1) / 3)
        want = 3 * (path.point(x0, x1, nxt, (g,)) - path.point(x0, x1, t, (g,)))
        got = path.secant_velocity(x0, x1, t, (g,), steps=3)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_secant_target_errors(gen):
    x0, x1 = pair(gen)
    sample = BezierPath(2).sample(x0, x1, times(gen), (rand(gen, *x0.shape),))
    with pytest.raises(ValueError, match="grid_steps=N"):
        regression_target(sample, "secant")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="grid steps N must be an int >= 1"):
            regression_target(sample, "secant", grid_steps=bad)
    with pytest.raises(ValueError, match="secant target only"):
        regression_target(sample, "tangent", grid_steps=2)
    bare = PathSample(x0=x0, x1=x1, t=sample.t, x_t=sample.x_t, dx_t=sample.dx_t)
    with pytest.raises(ValueError, match="guide points"):
        regression_target(bare, "secant", grid_steps=2)


def ushaped_cdf(t, a):
    """CDF of p(t) ~ e^(a t) + e^(a (1 - t)) on [0, 1]."""
    return 0.5 * (torch.expm1(a * t) - torch.expm1(a * (1 - t)) + math.expm1(a)) / math.expm1(a)


def ks_distance(sample, cdf):
    x = torch.sort(sample.double()).values
    n = x.numel()
    f = cdf(x)
    hi = torch.arange(1, n + 1, dtype=F64) / n
    lo = torch.arange(0, n, dtype=F64) / n
    return float(torch.maximum(hi - f, f - lo).max())


@pytest.mark.parametrize("a", [4.0, 1.5])
def test_ushaped_time_matches_its_density(a, gen):
    n = 50_000
    t = UShapedTime(a)(n, gen)
    assert t.shape == (n,) and t.min() >= 0 and t.max() <= 1
    # Kolmogorov-Smirnov: the 0.1% critical value is 1.95 / sqrt(n)
    crit = 1.95 / math.sqrt(n)
    assert ks_distance(t, lambda x: ushaped_cdf(x, a)) < crit
    # the check has power: a uniform sample is far from the U-shaped CDF
    assert ks_distance(torch.rand(n, generator=gen), lambda x: ushaped_cdf(x, a)) > 2 * crit
    # binned: each of 20 bins holds its probability mass up to 5 binomial standard deviations
    edges = torch.linspace(0, 1, 21, dtype=F64)
    p = ushaped_cdf(edges[1:], a) - ushaped_cdf(edges[:-1], a)
    counts = torch.histc(t.double(), bins=20, min=0, max=1)
    assert ((counts / n - p).abs() <= 5 * torch.sqrt(p * (1 - p) / n)).all()


def test_uniform_and_logitnormal_times(gen):
    n = 50_000
    u = UniformTime()(n, gen)
    assert ks_distance(u, lambda x: x) < 1.95 / math.sqrt(n)
    t = LogitNormalTime(mean=0.5, std=0.7)(n, gen).double()
    logit = torch.log(t / (1 - t))
    assert abs(float(logit.mean()) - 0.5) < 5 * 0.7 / math.sqrt(n)
    assert abs(float(logit.std()) - 0.7) < 0.02
    assert isinstance(make_time_sampler("ushaped", a=2.0), UShapedTime)
    with pytest.raises(ValueError, match=r"unknown time sampling 'beta'.*uniform"):
        make_time_sampler("beta")
    with pytest.raises(ValueError, match="must be > 0"):
        UShapedTime(0.0)


@pytest.mark.parametrize("steps", [1, 2, 4, 7])
def test_distill_times_grid(steps, gen):
    sampler = distill_times(steps)
    expected = torch.tensor([k / steps for k in range(steps)])
    torch.testing.assert_close(torch.sort(sampler.values).values, expected)
    t = sampler(2000, gen)
    assert t.shape == (2000,)
    drawn = torch.unique(t)
    torch.testing.assert_close(drawn, expected)  # every grid value drawn, nothing else


def test_distill_times_and_discrete_time_errors():
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="steps must be an int >= 1"):
            distill_times(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        DiscreteTime([0.0, 1.0])
    with pytest.raises(ValueError, match="at least one"):
        DiscreteTime([])


def test_bezier_bad_inputs(gen):
    x0, x1 = pair(gen, n=8)
    t = times(gen, 8)
    for order in (0, -2, 1.0, True):
        with pytest.raises(ValueError, match="Bezier order must be an int >= 1"):
            BezierPath(order)
    with pytest.raises(ValueError, match="x0 and x1 must have the same shape"):
        LinearPath().sample(x0, x1[:, :2], t)
    with pytest.raises(ValueError, match="needs 1 guide"):
        BezierPath(2).sample(x0, x1, t)
    with pytest.raises(ValueError, match="guide 1 has shape"):
        BezierPath(2).sample(x0, x1, t, (x0[:4],))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        LinearPath().sample(x0, x1, t + 1.0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        LinearPath().sample(x0, x1, t - 1.0)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        LinearPath().sample(x0, x1, t[:3])
    bad_t = t.clone()
    bad_t[0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        LinearPath().sample(x0, x1, bad_t)
