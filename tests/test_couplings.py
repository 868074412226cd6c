"""Couplings (METHODS.md section 3): independent, minibatch OT, full OT, reflow, data-anchored."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import bezkit.couplings.full_ot as full_ot_module
from bezkit.couplings import (
    DataAnchoredCoupling,
    FullOTCoupling,
    IndependentCoupling,
    MinibatchOTCoupling,
    PairPool,
    Pairs,
    ReflowCoupling,
    exact_ot_permutation,
    integrate_in_batches,
    sinkhorn_plan,
    squared_cost,
)
from bezkit.data import get_sampler
from bezkit.metrics import coupling_crossings
from bezkit.models import MLPVelocity
from bezkit.solvers import solve_ode

pytestmark = pytest.mark.usefixtures("single_thread")

SRC, TGT = get_sampler("gaussian"), get_sampler("moons")


class UniformSquare:
    """Uniform on [0, 1]^2 (a test sampler)."""

    name = "square"

    def sample(self, n, generator=None):
        return torch.rand(n, 2, generator=generator)


def pair_cost(x0, x1):
    """Total squared-Euclidean cost of the pairing ``(x0[i], x1[i])`` in float64."""
    return float((x0.double() - x1.double()).pow(2).sum())


def optimal_cost(x0, x1):
    cost = squared_cost(x0, x1)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def match_rows(a, b):
    """Index ``idx`` with ``a == b[idx]`` row by row (exact equality); fails if a row is missing."""
    eq = (a[:, None] == b[None]).all(-1)
    assert eq.any(1).all(), "a paired row is not one of the drawn rows"
    return eq.float().argmax(1)


def drawn(n, seed, source=SRC, target=TGT):
    """The sources and targets a coupling draws from ``Generator().manual_seed(seed)``."""
    g = torch.Generator().manual_seed(seed)
    return source.sample(n, g), target.sample(n, g)


def test_independent_coupling_draws_source_then_target(make_gen):
    pairs = IndependentCoupling(SRC, TGT).sample(100, make_gen(3))
    x0, x1 = drawn(100, 3)
    assert torch.equal(pairs.x0, x0) and torch.equal(pairs.x1, x1)
    assert pairs.guides == ()


@pytest.mark.parametrize("solver", ["emd", "hungarian"])
def test_minibatch_exact_ot_is_an_optimal_permutation(solver, make_gen):
    n = 128
    pairs = MinibatchOTCoupling(SRC, TGT, solver=solver).sample(n, make_gen(5))
    x0, x1 = drawn(n, 5)
    assert torch.equal(pairs.x0, x0)
    perm = match_rows(pairs.x1, x1)
    assert torch.equal(torch.sort(perm).values, torch.arange(n)), "not a permutation"
    cost = pair_cost(pairs.x0, pairs.x1)
    # the optimum, by the assignment solver and by POT's exact OT (emd2 is the mean cost)
    assert cost == pytest.approx(optimal_cost(x0, x1), rel=1e-9)
    w = np.full(n, 1.0 / n)
    assert cost / n == pytest.approx(ot.emd2(w, w, squared_cost(x0, x1)), rel=1e-9)
    # and it beats the independent pairing of the same draws (strictly, for continuous data)
    assert cost < pair_cost(x0, x1)


def test_emd_and_hungarian_agree_in_cost(make_gen):
    for seed in range(3):
        g = make_gen(seed)
        x0, x1 = SRC.sample(64, g), TGT.sample(64, g)
        c_emd = pair_cost(x0, x1[exact_ot_permutation(x0, x1, solver="emd")])
        c_hun = pair_cost(x0, x1[exact_ot_permutation(x0, x1, solver="hungarian")])
        assert c_emd == pytest.approx(c_hun, rel=1e-9)


def test_exact_ot_on_image_shaped_data_and_ties(make_gen):
    g = make_gen(0)
    x0, x1 = torch.randn(16, 1, 2, 2, generator=g), torch.randn(16, 1, 2, 2, generator=g)
    perm = exact_ot_permutation(x0, x1)
    assert torch.equal(torch.sort(perm).values, torch.arange(16))
    assert pair_cost(x0.flatten(1), x1[perm].flatten(1)) == pytest.approx(
        optimal_cost(x0, x1), rel=1e-9
    )
    # all targets identical: every permutation is optimal, the result must still be one
    same = torch.zeros(16, 2)
    perm = exact_ot_permutation(torch.randn(16, 2, generator=g), same)
    assert torch.equal(torch.sort(perm).values, torch.arange(16))


def test_sinkhorn_coupling_samples_from_the_entropic_plan(make_gen):
    n = 96
    x0, x1 = drawn(n, 4)
    plan = sinkhorn_plan(x0, x1, reg=0.05)
    np.testing.assert_allclose(plan.sum(1), 1 / n, rtol=1e-3)
    np.testing.assert_allclose(plan.sum(0), 1 / n, rtol=1e-3)
    cost = squared_cost(x0, x1)
    plan_cost = float((plan * cost).sum())
    exact = optimal_cost(x0, x1) / n
    independent = float(cost.mean())
    assert exact <= plan_cost * (1 + 1e-3)  # the exact plan is the cheapest
    assert plan_cost < exact + 0.5 * (independent - exact)  # and Sinkhorn is much closer to it
    pairs = MinibatchOTCoupling(SRC, TGT, method="sinkhorn", reg=0.05).sample(n, make_gen(4))
    assert pairs.x0.shape == pairs.x1.shape == (n, 2)
    match_rows(pairs.x0, x0)  # rows are drawn sources and targets (with repeats)
    match_rows(pairs.x1, x1)
    assert pair_cost(pairs.x0, pairs.x1) < pair_cost(x0, x1)


def test_exact_ot_pairs_are_monotone_and_rarely_cross(make_gen):
    # With squared Euclidean cost an optimal pairing is cyclically monotone; for 2-cycles:
    # <x0_i - x0_j, x1_i - x1_j> >= 0, i.e. swapping the partners of any two pairs never lowers the
    # cost. Then the interpolants never meet at the same time t:
    # ||x_t^i - x_t^j||^2 >= (1-t)^2 ||x0_i - x0_j||^2 + t^2 ||x1_i - x1_j||^2 > 0.
    sq = UniformSquare()
    n = 200
    pairs = MinibatchOTCoupling(sq, sq).sample(n, make_gen(9))
    indep = IndependentCoupling(sq, sq).sample(n, make_gen(9))
    assert torch.equal(indep.x0, pairs.x0)  # the same draws, paired independently

    def min_inner(x0, x1):
        x0, x1 = x0.double(), x1.double()
        return float(((x0[:, None] - x0[None]) * (x1[:, None] - x1[None])).sum(-1).min())

    assert min_inner(pairs.x0, pairs.x1) >= -1e-12
    assert min_inner(indep.x0, indep.x1) < 0  # the check has power
    x0, x1 = pairs.x0.double(), pairs.x1.double()
    for t in (0.25, 0.5, 0.75):
        xt = (1 - t) * x0 + t * x1
        gap = (xt[:, None] - xt[None]).pow(2).sum(-1)
        bound = (1 - t) ** 2 * (x0[:, None] - x0[None]).pow(2).sum(-1) + t**2 * (
            x1[:, None] - x1[None]
        ).pow(2).sum(-1)
        assert (gap >= bound - 1e-12).all()
    # straight segments (ignoring time) may still cross, but far less often than independent ones
    ot_cross = coupling_crossings(pairs.x0, pairs.x1).pairs
    indep_cross = coupling_crossings(indep.x0, indep.x1).pairs
    assert indep_cross > 1000
    assert ot_cross < 0.02 * indep_cross


def test_crossing_segments_can_be_squared_cost_optimal():
    # A counterexample to "exact OT segments never cross": a long segment ending just past the
    # crossing point and a long segment starting just before it, at 30 degrees. Swapping partners
    # costs more, so the crossing pairing is the exact OT plan; the two particles pass the crossing
    # point at different times (t = 10/11 and t = 1/11), so the straight flow stays well defined.
    w = torch.tensor([3**0.5 / 2, 0.5], dtype=torch.float64)
    x0 = torch.stack([torch.tensor([-10.0, 0.0], dtype=torch.float64), -w])
    x1 = torch.stack([torch.tensor([1.0, 0.0], dtype=torch.float64), 10 * w])
    assert torch.equal(exact_ot_permutation(x0, x1), torch.arange(2))
    assert torch.equal(exact_ot_permutation(x0, x1, solver="hungarian"), torch.arange(2))
    assert pair_cost(x0, x1) < pair_cost(x0, x1.flip(0))
    assert coupling_crossings(x0, x1).pairs == 1
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)[:, None, None]
    xt = (1 - t) * x0 + t * x1
    assert float((xt[:, 0] - xt[:, 1]).norm(dim=-1).min()) > 1.0


def test_full_ot_coupling_is_solved_once_and_optimal(monkeypatch, make_gen):
    calls = []
    real = full_ot_module.exact_ot_permutation

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(full_ot_module, "exact_ot_permutation", counted)
    n = 300
    coupling = FullOTCoupling(SRC, TGT, n_points=n, seed=2)
    for k in range(20):
        batch = coupling.sample(64, make_gen(k))
        idx = match_rows(batch.x0, coupling.pairs.x0)
        assert torch.equal(batch.x1, coupling.pairs.x1[idx])  # batches are matched pool pairs
    assert len(calls) == 1
    x0, x1 = drawn(n, 2)
    assert torch.equal(coupling.pairs.x0, x0)
    perm = match_rows(coupling.pairs.x1, x1)
    assert torch.equal(torch.sort(perm).values, torch.arange(n))
    assert pair_cost(coupling.pairs.x0, coupling.pairs.x1) == pytest.approx(
        optimal_cost(x0, x1), rel=1e-9
    )
    with pytest.raises(ValueError, match="n_points >= 2"):
        FullOTCoupling(SRC, TGT, n_points=1)


class CountingTeacher(torch.nn.Module):
    """An MLP teacher that counts its calls and records whether it was in eval mode."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = MLPVelocity(2, hidden=16, depth=2, time_dim=8)
        self.calls = 0
        self.modes: set[bool] = set()

    def forward(self, x, t):
        self.calls += 1
        self.modes.add(self.training)
        return self.net(x, t)


def test_reflow_coupling_generates_once_and_matches_solve_ode(make_gen):
    teacher = CountingTeacher()
    teacher.train()
    coupling = ReflowCoupling(teacher, SRC, n_pairs=200, steps=10, method="heun", seed=6)
    assert coupling.generation_count == 0  # lazy
    for k in range(10):
        coupling.sample(32, make_gen(k))
    assert coupling.generation_count == 1
    assert teacher.calls == 10 * 2  # one ODE solve: 10 Heun steps of 2 evaluations
    assert teacher.modes == {False}, "the teacher must run in eval mode"
    assert teacher.training, "the teacher's training mode is restored"
    x0 = SRC.sample(200, torch.Generator().manual_seed(6))
    assert torch.equal(coupling.pairs.x0, x0)
    expected = solve_ode(teacher, x0, method="heun", steps=10).x
    assert torch.equal(coupling.pairs.x1, expected)


def test_reflow_coupling_in_batches_and_given_x0(make_gen):
    teacher = CountingTeacher().eval()
    x0 = torch.randn(50, 2, generator=make_gen(0))
    batched = ReflowCoupling(teacher, x0=x0, steps=5, batch_size=16)
    assert torch.equal(batched.pairs.x0, x0)
    torch.testing.assert_close(batched.pairs.x1, solve_ode(teacher, x0, steps=5).x)
    with pytest.raises(ValueError, match="needs exactly one of a sampler or x0"):
        ReflowCoupling(teacher, SRC, x0=x0)
    with pytest.raises(ValueError, match="needs exactly one of a sampler or x0"):
        ReflowCoupling(teacher)
    bad = x0.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="x0 contains NaN or inf"):
        ReflowCoupling(teacher, x0=bad)


def test_data_anchored_coupling_keeps_real_data_and_inverts_constant_field(make_gen):
    c = torch.tensor([1.5, -0.5])
    x1 = TGT.sample(100, make_gen(1))
    coupling = DataAnchoredCoupling(lambda x, t: c.expand_as(x), x1=x1, steps=20)
    for k in range(5):
        coupling.sample(16, make_gen(k))
    assert coupling.generation_count == 1
    assert torch.equal(coupling.pairs.x1, x1)
    torch.testing.assert_close(coupling.pairs.x0, x1 - c, rtol=0, atol=1e-5)


def test_data_anchored_coupling_inverts_a_linear_field(make_gen):
    # dx/dt = A x  =>  x(1) = x(0) expm(A)^T, so the reverse flow gives x0 = x1 expm(-A)^T
    a = torch.tensor([[-0.3, 1.0], [-1.0, 0.2]])
    x1 = TGT.sample(100, make_gen(2))
    coupling = DataAnchoredCoupling(lambda x, t: x @ a.T, x1=x1, steps=40, method="rk4")
    assert torch.equal(coupling.pairs.x1, x1)
    expected = x1.double() @ torch.linalg.matrix_exp(-a.double()).T
    torch.testing.assert_close(coupling.pairs.x0.double(), expected, rtol=1e-5, atol=1e-5)
    # forward again from the data-anchored sources: back at the real data
    forward = ReflowCoupling(lambda x, t: x @ a.T, x0=coupling.pairs.x0, steps=40, method="rk4")
    torch.testing.assert_close(forward.pairs.x1, x1, rtol=1e-5, atol=1e-5)


def test_data_anchored_coupling_from_target_sampler_is_seeded():
    teacher = CountingTeacher().eval()
    a = DataAnchoredCoupling(teacher, TGT, n_pairs=64, steps=4, seed=3)
    b = DataAnchoredCoupling(teacher, TGT, n_pairs=64, steps=4, seed=3)
    assert torch.equal(a.pairs.x1, TGT.sample(64, torch.Generator().manual_seed(3)))
    assert torch.equal(a.pairs.x0, b.pairs.x0)
    with pytest.raises(ValueError, match="needs exactly one of a sampler or x1"):
        DataAnchoredCoupling(teacher)


def test_integrate_in_batches_reverse_undoes_forward(make_gen):
    a = torch.tensor([[0.1, 0.7], [-0.7, 0.1]], dtype=torch.float64)
    x = torch.randn(30, 2, generator=make_gen(0), dtype=torch.float64)
    fwd = integrate_in_batches(lambda z, t: z @ a.T, x, steps=30, method="rk4", batch_size=7)
    back = integrate_in_batches(
        lambda z, t: z @ a.T, fwd, reverse=True, steps=30, method="rk4", batch_size=7
    )
    torch.testing.assert_close(back, x, rtol=1e-9, atol=1e-9)


def test_pairs_and_pair_pool_validate(make_gen):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="x0 and x1 must have the same shape"):
        Pairs(x, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="guide 1 has shape"):
        Pairs(x, x, (torch.zeros(3, 2),))
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x1 contains NaN or inf"):
        PairPool(Pairs(x, bad))
    g = torch.arange(8.0).reshape(4, 2)
    pool = PairPool(Pairs(g, -g, (2 * g,)))
    batch = pool.sample(10, make_gen(0))
    assert len(batch) == 10
    torch.testing.assert_close(batch.x1, -batch.x0)
    torch.testing.assert_close(batch.guides[0], 2 * batch.x0)


def test_ot_bad_inputs():
    x = torch.randn(8, 2)
    with pytest.raises(ValueError, match="unknown OT solver 'simplex'; known: emd, hungarian"):
        exact_ot_permutation(x, x, solver="simplex")
    with pytest.raises(ValueError, match="equal batch sizes"):
        exact_ot_permutation(x, x[:5])
    with pytest.raises(ValueError, match="unknown minibatch OT method"):
        MinibatchOTCoupling(SRC, TGT, method="greedy")
    with pytest.raises(ValueError, match="regularisation must be > 0"):
        sinkhorn_plan(x, x, reg=0.0)
