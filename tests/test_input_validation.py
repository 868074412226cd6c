"""Clear errors for wrong models and inputs (issue 11 item 12), and hypothesis property tests of
the Bezier path maths: B(0) = X0, B(1) = X1, and B'(t) against central finite differences."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bezkit.models import MLPVelocity
from bezkit.paths import BezierPath
from bezkit.solvers import SOLVERS, solve_ode

# -- solve_ode and MLPVelocity -------------------------------------------------------------------


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize(
    ("returns", "words"),
    [
        (lambda x: torch.zeros(1, 2), "returned shape (1, 2) for x of shape (5, 2)"),
        (lambda x: torch.zeros(2), "returned shape (2,) for x of shape (5, 2)"),
        (lambda x: torch.tensor(0.0), "returned shape () for x of shape (5, 2)"),
        (lambda x: None, "returned NoneType; it must return a tensor of shape (5, 2)"),
        (lambda x: torch.zeros(5, 2, dtype=torch.int64), "returned dtype torch.int64"),
    ],
)
def test_a_model_with_the_wrong_output_is_a_clear_error(method, returns, words):
    with pytest.raises(ValueError) as err:
        solve_ode(lambda x, t: returns(x), torch.zeros(5, 2), method=method, steps=2)
    assert words in str(err.value)


def test_float64_input_to_a_float32_model_is_a_clear_error():
    model = MLPVelocity(2, hidden=8, depth=1)
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x is torch.float64 but the model's weights are"):
        solve_ode(model, x, steps=1)
    with pytest.raises(ValueError, match=r"float32 weights but x is torch.float64"):
        model(x, torch.zeros(4))
    # converting either side works
    assert solve_ode(model.double(), x, steps=1).x.dtype == torch.float64


def test_a_float_time_into_the_mlp_is_a_clear_error():
    model = MLPVelocity(2, hidden=8, depth=1)
    with pytest.raises(ValueError, match=r"t must be a tensor of shape \(3,\), got float 0.5"):
        model(torch.zeros(3, 2), 0.5)
    with pytest.raises(ValueError, match=r"expects x of shape \(n, 2\), got list"):
        model([[0.0, 0.0]], torch.zeros(1))


def test_a_non_tensor_or_integer_state_is_a_clear_error():
    with pytest.raises(ValueError, match="got list"):
        solve_ode(lambda x, t: x, [[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"got torch.int64 tensor of shape \(2, 2\)"):
        solve_ode(lambda x, t: x, torch.zeros(2, 2, dtype=torch.int64))


# -- Bezier path maths, property-based -----------------------------------------------------------

paths = settings(max_examples=60, deadline=None)


def _points(seed: int, order: int, n: int, d: int, scale: float):
    g = torch.Generator().manual_seed(seed)
    pts = [scale * torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(order + 1)]
    return pts[0], pts[-1], pts[1:-1]


@paths
@given(
    order=st.integers(1, 6),
    n=st.integers(1, 5),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.01, 100.0),
)
def test_bezier_endpoints_are_the_pair(order, n, d, seed, scale):
    x0, x1, guides = _points(seed, order, n, d, scale)
    path = BezierPath(order)
    zeros, ones = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    torch.testing.assert_close(path.point(x0, x1, zeros, guides), x0, rtol=0, atol=1e-12 * scale)
    torch.testing.assert_close(path.point(x0, x1, ones, guides), x1, rtol=0, atol=1e-12 * scale)
    # the endpoint tangents are n (P_1 - P_0) and n (P_n - P_{n-1})
    pts = [x0, *guides, x1]
    torch.testing.assert_close(
        path.tangent(x0, x1, zeros, guides), order * (pts[1] - pts[0]), rtol=1e-10, atol=1e-10
    )
    torch.testing.assert_close(
        path.tangent(x0, x1, ones, guides), order * (pts[-1] - pts[-2]), rtol=1e-10, atol=1e-10
    )


@paths
@given(
    order=st.integers(1, 6),
    n=st.integers(1, 5),
    d=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
    t=st.floats(0.01, 0.99),
)
def test_bezier_tangent_matches_finite_differences(order, n, d, seed, t):
    x0, x1, guides = _points(seed, order, n, d, 1.0)
    path = BezierPath(order)
    h = 1e-5
    tt = torch.full((n,), t, dtype=torch.float64)
    fd = (path.point(x0, x1, tt + h, guides) - path.point(x0, x1, tt - h, guides)) / (2 * h)
    # central differences: error ~ h^2 |B'''| <= h^2 n^3 2^n max|P| (tiny against the tolerance)
    torch.testing.assert_close(path.tangent(x0, x1, tt, guides), fd, rtol=1e-6, atol=1e-6)
