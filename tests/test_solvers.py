"""ODE solvers: exactness on polynomials, linear ODEs against the matrix exponential, convergence
orders, reversibility, NFE counts and recorded trajectories."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bezkit.solvers import FIXED_STEP, SOLVERS, dopri5, solve_ode

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
A = torch.tensor([[-0.4, 1.3, 0.2], [-1.1, 0.1, 0.5], [0.3, -0.6, -0.2]], dtype=F64)


def cubic_time(x, t):
    """v = 3 t^2: carries x to x + 1 over [0, 1]."""
    return (3 * t**2)[:, None].expand_as(x)


def linear(x, t):
    """dx/dt = A x (rows of x are states)."""
    return x @ A.T


def start(gen, n=16, d=3):
    return torch.randn(n, d, generator=gen, dtype=F64)


def exact_linear(x0, t=1.0):
    return x0 @ torch.linalg.matrix_exp(t * A).T


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_cubic_time_field_is_exact_for_high_order_methods(method, gen):
    x = start(gen)
    sol = solve_ode(cubic_time, x, method=method, steps=3, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(sol.x, x + 1, rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 4, 10, 50])
def test_cubic_time_field_errors_of_low_order_methods(steps, gen):
    # quadrature of 3 t^2 on N equal steps (h = 1/N), exact for a quadratic integrand:
    # left Riemann (Euler) 1 - 3/(2N) + 1/(2N^2); midpoint 1 - 1/(4N^2); trapezoid (Heun) 1 + 1/(2N^2)
    x = start(gen)
    expected = {
        "euler": 1 - 3 / (2 * steps) + 1 / (2 * steps**2),
        "midpoint": 1 - 1 / (4 * steps**2),
        "heun": 1 + 1 / (2 * steps**2),
    }
    for method, shift in expected.items():
        sol = solve_ode(cubic_time, x, method=method, steps=steps)
        torch.testing.assert_close(sol.x - x, torch.full_like(x, shift), rtol=0, atol=1e-12)
    # Euler's error is O(1/steps): steps * error = 3/2 - 1/(2 steps) lies in [1, 3/2]
    err = 1 - float((solve_ode(cubic_time, x, method="euler", steps=steps).x - x).mean())
    assert 1.0 - 1e-12 <= steps * err <= 1.5


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun", "rk4"])
def test_linear_ode_against_matrix_exponential(method, gen):
    x = start(gen)
    steps = {"euler": 2000, "midpoint": 200, "heun": 200, "rk4": 40}[method]
    sol = solve_ode(linear, x, method=method, steps=steps)
    tol = {"euler": 2e-3, "midpoint": 1e-4, "heun": 1e-4, "rk4": 1e-7}[method]
    torch.testing.assert_close(sol.x, exact_linear(x), rtol=0, atol=tol)


def test_dopri5_linear_ode_within_tolerance_and_tighter_costs_more(gen):
    x = start(gen)
    loose = solve_ode(linear, x, method="dopri5", atol=1e-4, rtol=1e-4)
    tight = solve_ode(linear, x, method="dopri5", atol=1e-9, rtol=1e-9)
    exact = exact_linear(x)
    err_loose = float((loose.x - exact).abs().max())
    err_tight = float((tight.x - exact).abs().max())
    assert err_tight < 1e-7
    assert err_loose < 1e-3
    assert err_tight < err_loose
    assert tight.nfe > loose.nfe


@pytest.mark.parametrize(
    ("method", "order"), [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)]
)
def test_convergence_order_by_halving_steps(method, order, gen):
    x = start(gen)
    exact = exact_linear(x)
    n = {"euler": 64, "midpoint": 32, "heun": 32, "rk4": 8}[method]
    errs = [
        float((solve_ode(linear, x, method=method, steps=s).x - exact).abs().max())
        for s in (n, 2 * n, 4 * n)
    ]
    for coarse, fine in itertools.pairwise(errs):
        assert math.log2(coarse / fine) == pytest.approx(order, abs=0.2)


def test_time_dependent_field_convergence(gen):
    # dx/dt = cos(t) x  =>  x(1) = x(0) e^{sin 1}: checks the stage times, not just the states
    x = start(gen)
    exact = x * math.exp(math.sin(1.0))

    def field(z, t):
        return torch.cos(t)[:, None] * z

    for method, order in (("midpoint", 2), ("heun", 2), ("rk4", 4)):
        e1 = float((solve_ode(field, x, method=method, steps=10).x - exact).abs().max())
        e2 = float((solve_ode(field, x, method=method, steps=20).x - exact).abs().max())
        assert math.log2(e1 / e2) == pytest.approx(order, abs=0.3), method


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_reverse_in_time_returns_to_start(method, gen):
    x = start(gen)
    fwd = solve_ode(linear, x, method=method, steps=50, atol=1e-10, rtol=1e-10)
    back = solve_ode(
        linear, fwd.x, method=method, steps=50, t_start=1.0, t_end=0.0, atol=1e-10, rtol=1e-10
    )
    torch.testing.assert_close(back.x, x, rtol=0, atol=1e-8)
    # reverse solves the same ODE: from x(1), integrating 1 -> 0 gives x(0) = x(1) expm(-A)^T
    torch.testing.assert_close(back.x, fwd.x @ torch.linalg.matrix_exp(-A).T, rtol=0, atol=1e-8)


def test_reverse_euler_uses_the_right_time_grid(gen):
    x = start(gen)
    back = solve_ode(cubic_time, x, method="euler", steps=4, t_start=1.0, t_end=0.0, record=True)
    torch.testing.assert_close(back.times, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    # Euler backwards samples v at the left ends 1, 0.75, 0.5, 0.25 with dt = -1/4
    shift = -sum(3 * s**2 for s in (1.0, 0.75, 0.5, 0.25)) / 4
    torch.testing.assert_close(back.x, x + shift, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun", "rk4"])
@pytest.mark.parametrize("steps", [1, 7])
def test_fixed_step_nfe(method, steps, gen, counting):
    field = counting(linear)
    sol = solve_ode(field, start(gen), method=method, steps=steps)
    per_step = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}[method]
    assert FIXED_STEP[method][1] == per_step
    assert sol.nfe == field.calls == per_step * steps


@pytest.mark.parametrize("tol", [1e-3, 1e-7])
def test_dopri5_nfe_is_the_number_of_calls(tol, gen, counting):
    field = counting(lambda x, t: torch.sin(3 * t)[:, None] * x + x @ A.T)
    sol = solve_ode(field, start(gen), method="dopri5", atol=tol, rtol=tol)
    assert sol.nfe == field.calls
    res = dopri5(counting(linear), start(gen), 0.0, 1.0, atol=tol, rtol=tol)
    # one first evaluation, then six per attempted step (first-same-as-last)
    assert res.nfe == 1 + 6 * (res.accepted + res.rejected)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_record_trajectory(method, gen):
    x = start(gen, n=5)
    sol = solve_ode(linear, x, method=method, steps=8, record=True)
    assert sol.trajectory.shape == (9, 5, 3)
    assert torch.equal(sol.trajectory[0], x)
    assert torch.equal(sol.trajectory[-1], sol.x)
    torch.testing.assert_close(sol.times, torch.linspace(0, 1, 9))
    # each recorded state is the solve to that grid time
    mid = solve_ode(linear, x, method=method, steps=4, t_end=0.5)
    torch.testing.assert_close(sol.trajectory[4], mid.x, rtol=0, atol=1e-12)
    assert solve_ode(linear, x, method=method, steps=8).trajectory is None


def test_record_dopri5_trajectory(gen):
    x = start(gen, n=5)
    sol = solve_ode(linear, x, method="dopri5", record=True, atol=1e-8, rtol=1e-8)
    m = sol.times.numel()
    assert m >= 3
    assert sol.trajectory.shape == (m, 5, 3)
    assert torch.equal(sol.trajectory[0], x)
    assert torch.equal(sol.trajectory[-1], sol.x)
    assert float(sol.times[0]) == 0.0 and float(sol.times[-1]) == pytest.approx(1.0)
    assert (sol.times[1:] > sol.times[:-1]).all()
    for k in (1, m // 2):
        exact = exact_linear(x, float(sol.times[k]))
        torch.testing.assert_close(sol.trajectory[k], exact, rtol=0, atol=1e-6)


def test_solver_does_not_track_gradients(gen):
    lin = torch.nn.Linear(3, 3).double()
    sol = solve_ode(lambda x, t: lin(x), start(gen), method="heun", steps=3)
    assert not sol.x.requires_grad


def test_solver_bad_inputs(gen):
    x = start(gen)
    with pytest.raises(ValueError, match="unknown solver 'rk45'; known solvers: euler"):
        solve_ode(linear, x, method="rk45")
    for steps in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="steps must be an int >= 1"):
            solve_ode(linear, x, steps=steps)
    with pytest.raises(ValueError, match=r"t_start must lie in \[0, 1\]"):
        solve_ode(linear, x, t_start=-0.5)
    with pytest.raises(ValueError, match=r"t_end must lie in \[0, 1\]"):
        solve_ode(linear, x, t_end=1.5)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        solve_ode(linear, bad)
    with pytest.raises(ValueError, match=r"shape \(n, \*data_shape\)"):
        solve_ode(linear, torch.zeros(4))
    assert set(SOLVERS) == {"euler", "midpoint", "heun", "rk4", "dopri5"}
