"""Metrics (METHODS.md section 5): W2 and its noise floor, straightness, curvature, cost, energy,
crossings."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bezkit.data import get_sampler
from bezkit.metrics import (
    coupling_crossings,
    curvature,
    noise_floor,
    normalised_straightness,
    path_energy,
    segments_cross,
    sliced_wasserstein2,
    straightness,
    trajectory_crossings,
    trajectory_velocities,
    transport_cost,
    wasserstein2,
)
from bezkit.solvers import solve_ode

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64


def cloud(gen, n=100, d=2):
    return torch.randn(n, d, generator=gen, dtype=F64)


# -- Wasserstein -----------------------------------------------------------------------------------


def test_w2_of_a_set_with_itself_and_a_permutation_is_zero(gen):
    a = cloud(gen)
    assert wasserstein2(a, a) == pytest.approx(0.0, abs=1e-6)
    assert wasserstein2(a, a[torch.randperm(a.shape[0], generator=gen)]) == pytest.approx(
        0.0, abs=1e-6
    )


@pytest.mark.parametrize("d", [2, 5])
def test_w2_of_a_translate_is_the_shift_norm(d, gen):
    a = cloud(gen, 120, d)
    m = torch.randn(d, generator=gen, dtype=F64)
    assert wasserstein2(a, a + m) == pytest.approx(float(m.norm()), rel=1e-9)


def test_w2_matches_brute_force_over_permutations(gen):
    a, b = cloud(gen, 6), cloud(gen, 6) + 0.5
    best = min(
        float((a - b[list(p)]).pow(2).sum(1).mean()) for p in itertools.permutations(range(6))
    )
    assert wasserstein2(a, b) == pytest.approx(math.sqrt(best), rel=1e-9)


def test_w2_unequal_sizes_and_image_shapes(gen):
    a = cloud(gen, 40)
    # duplicating every point does not change the empirical measure
    assert wasserstein2(a, torch.cat([a, a])) == pytest.approx(0.0, abs=1e-6)
    imgs = torch.randn(30, 1, 2, 2, generator=gen, dtype=F64)
    assert wasserstein2(imgs, imgs + 1.0) == pytest.approx(2.0, rel=1e-6)  # ||1_4|| = 2


def test_sliced_w2_is_at_most_w2(gen):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        a = cloud(g, 80, 3)
        b = cloud(g, 80, 3) * torch.tensor([2.0, 0.5, 1.0], dtype=F64) + 0.3
        assert sliced_wasserstein2(a, b, n_projections=128, seed=seed) <= wasserstein2(a, b) + 1e-9


@pytest.mark.parametrize("d", [2, 4])
def test_sliced_w2_of_a_translate(d, gen):
    # every projection shifts by <theta, m> without reordering, so SW2^2 = E <theta, m>^2 and
    # for uniform unit directions E <theta, u>^2 = 1/d
    a = cloud(gen, 200, d)
    m = torch.randn(d, generator=gen, dtype=F64)
    sw = sliced_wasserstein2(a, a + m, n_projections=4096, seed=1)
    assert sw == pytest.approx(float(m.norm()) / math.sqrt(d), rel=0.03)
    # exactly, for the seeded directions the function draws
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(d, 4096, generator=g, dtype=F64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    assert sw == pytest.approx(float((m @ theta).pow(2).mean().sqrt()), rel=1e-9)
    assert sliced_wasserstein2(a, a, seed=3) == pytest.approx(0.0, abs=1e-12)


def test_noise_floor_is_positive_and_seeded():
    target = get_sampler("moons")
    a = noise_floor(target, 256, seed=0)
    assert a > 0
    assert noise_floor(target, 256, seed=0) == a
    assert noise_floor(target, 256, seed=1) != a
    # it is the W2 between the two seeded draws
    g = torch.Generator().manual_seed(0)
    x, y = target.sample(256, g), target.sample(256, g)
    assert a == pytest.approx(wasserstein2(x, y), rel=1e-12)
    # it shrinks with n (the empirical measure converges)
    assert noise_floor(target, 1024, seed=0) < a
    s = noise_floor(target, 256, seed=0, sliced=True)
    assert 0 < s <= a + 1e-9
    assert noise_floor(target, 256, seed=0, sliced=True) == s


def test_w2_bad_inputs(gen):
    a = cloud(gen, 10)
    with pytest.raises(ValueError, match="different dimensions"):
        wasserstein2(a, cloud(gen, 10, 3))
    with pytest.raises(ValueError, match="equal sample shapes"):
        sliced_wasserstein2(a, cloud(gen, 12))
    bad = a.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        wasserstein2(bad, a)


# -- straightness, curvature, cost, energy ---------------------------------------------------------


def straight_field(delta):
    """Each sample moves with its own constant velocity ``delta[i]`` (the straight flow of pairs)."""
    return lambda x, t: delta.to(x.dtype)


def test_straight_flow_has_zero_straightness_and_curvature(gen):
    x0 = cloud(gen, 64)
    x1 = cloud(gen, 64) + 3.0
    delta = x1 - x0
    sol = solve_ode(straight_field(delta), x0, steps=20, record=True)
    torch.testing.assert_close(sol.x, x1)
    traj, times = sol.trajectory, sol.times
    field = straight_field(delta)
    assert straightness(field, traj, times) == pytest.approx(0.0, abs=1e-20)
    assert normalised_straightness(field, traj, times) == pytest.approx(0.0, abs=1e-20)
    assert curvature(traj, times) == pytest.approx(0.0, abs=1e-9)
    cost = float(delta.pow(2).sum(1).mean())
    assert transport_cost(traj[0], traj[-1]) == pytest.approx(cost, rel=1e-12)
    assert path_energy(field, traj, times) == pytest.approx(cost, rel=1e-9)


def test_constant_velocity_path_energy(gen):
    c = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    x0 = cloud(gen, 32, 3)
    sol = solve_ode(lambda x, t: c.expand_as(x), x0, steps=10, record=True)
    field = lambda x, t: c.expand_as(x)  # noqa: E731
    assert path_energy(field, sol.trajectory, sol.times) == pytest.approx(float(c @ c), rel=1e-9)
    assert straightness(field, sol.trajectory, sol.times) == pytest.approx(0.0, abs=1e-20)


def rotation(omega):
    j = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    return lambda x, t: omega * x @ j.T


def test_rotating_field_straightness_matches_closed_form(gen):
    # Z_t = R(omega t) Z_0, |Z_t| = r: S = r^2 (omega^2 - 2 (1 - cos omega)),
    # chord^2 = 2 r^2 (1 - cos omega), energy = omega^2 r^2
    omega = 1.2
    x0 = cloud(gen, 64)
    r2 = float(x0.pow(2).sum(1).mean())
    sol = solve_ode(rotation(omega), x0, method="rk4", steps=1000, record=True)
    traj, times = sol.trajectory, sol.times
    s = straightness(rotation(omega), traj, times)
    assert s > 0.1
    assert s == pytest.approx(r2 * (omega**2 - 2 * (1 - math.cos(omega))), rel=1e-2)
    chord2 = 2 * r2 * (1 - math.cos(omega))
    assert transport_cost(traj[0], traj[-1]) == pytest.approx(chord2, rel=1e-6)
    assert normalised_straightness(rotation(omega), traj, times) == pytest.approx(s / chord2)
    assert path_energy(rotation(omega), traj, times) == pytest.approx(omega**2 * r2, rel=1e-6)
    assert curvature(traj, times) == pytest.approx(s, rel=1e-2)


@pytest.mark.parametrize("steps", [1, 5, 40])
def test_curvature_equals_straightness_on_euler_trajectories(steps, gen):
    # an Euler step is x_{i+1} = x_i + dt v(x_i, t_i), so the discrete slopes are the velocities
    def field(x, t):
        return rotation(2.0)(x, t) + torch.sin(3 * t)[:, None] * x

    x0 = cloud(gen, 50)
    sol = solve_ode(field, x0, method="euler", steps=steps, record=True)
    s = straightness(field, sol.trajectory, sol.times)
    assert s > 0
    assert curvature(sol.trajectory, sol.times) == pytest.approx(s, rel=1e-5)
    vel = trajectory_velocities(field, sol.trajectory, sol.times)
    assert vel.shape == (steps, 50, 2)
    assert straightness(field, sol.trajectory, sol.times, velocities=vel) == s


def test_straightness_formula_by_hand(gen):
    # two states, one interval: S = E||(Z1 - Z0) - v(Z0, 0)||^2
    z0, z1, v = cloud(gen, 10), cloud(gen, 10), cloud(gen, 10)
    traj = torch.stack([z0, z1])
    times = torch.tensor([0.0, 1.0])
    expected = float((z1 - z0 - v).pow(2).sum(1).mean())
    assert straightness(lambda x, t: v, traj, times) == pytest.approx(expected, rel=1e-12)
    assert curvature(traj, times) == pytest.approx(0.0, abs=1e-20)  # one chord: no bend


def test_metrics_weight_a_non_uniform_grid_by_its_steps(gen):
    # three states at t = 0, 0.2, 1 (as an adaptive solver records them): the integrals are
    # dt-weighted left Riemann sums, the curvature a plain mean over the intervals
    z0, z1, z2 = cloud(gen, 10), cloud(gen, 10), cloud(gen, 10)
    traj = torch.stack([z0, z1, z2])
    times = torch.tensor([0.0, 0.2, 1.0], dtype=F64)
    va, vb = cloud(gen, 10), cloud(gen, 10)

    def field(x, t):
        return va if float(t[0]) == 0.0 else vb

    def msq(v):
        return float(v.pow(2).sum(1).mean())

    chord = z2 - z0
    expected_s = 0.2 * msq(chord - va) + 0.8 * msq(chord - vb)
    assert straightness(field, traj, times) == pytest.approx(expected_s, rel=1e-12)
    assert path_energy(field, traj, times) == pytest.approx(0.2 * msq(va) + 0.8 * msq(vb))
    expected_c = 0.5 * (msq((z1 - z0) / 0.2 - chord) + msq((z2 - z1) / 0.8 - chord))
    assert curvature(traj, times) == pytest.approx(expected_c, rel=1e-12)


def test_transport_cost_formula(gen):
    x0, x1 = torch.randn(20, 3, 4, 4, generator=gen), torch.randn(20, 3, 4, 4, generator=gen)
    expected = sum(float((x1[i] - x0[i]).double().pow(2).sum()) for i in range(20)) / 20
    assert transport_cost(x0, x1) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        transport_cost(x0, x1[:5])


def test_straightness_bad_inputs(gen):
    traj = torch.randn(5, 4, 2, generator=gen)
    with pytest.raises(ValueError, match=r"times must have shape \(5,\)"):
        curvature(traj, torch.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="trajectory must have shape"):
        curvature(traj[0], torch.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="at least two states"):
        curvature(traj[:1], torch.zeros(1))


# -- crossings --------------------------------------------------------------------------------------


def orient(a, b, c):
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def brute_force_crossings(traj):
    """Reference: every segment of every polyline against every segment of every other one."""
    traj = traj.double().transpose(0, 1).tolist()  # (m, T+1, 2)
    m = len(traj)
    pairs = 0
    for i in range(m):
        for j in range(i + 1, m):
            hit = False
            for p1, q1 in itertools.pairwise(traj[i]):
                for p2, q2 in itertools.pairwise(traj[j]):
                    if (
                        orient(p1, q1, p2) * orient(p1, q1, q2) < 0
                        and orient(p2, q2, p1) * orient(p2, q2, q1) < 0
                    ):
                        hit = True
                        break
                if hit:
                    break
            pairs += hit
    return pairs


def test_two_crossing_polylines():
    # an X: two two-segment polylines through the centre from opposite corners
    a = torch.tensor([[0.0, 0.0], [0.4, 0.4], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.6, 0.4], [1.0, 0.0]])
    stats = trajectory_crossings(torch.stack([a, b], dim=1))
    assert stats.pairs == 1 and stats.m == 2
    assert stats.fraction == 1.0 and stats.per_trajectory == 1.0


def test_parallel_and_touching_polylines_do_not_cross():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.5], [2.0, 0.0]])
    parallel = torch.stack([a, a + torch.tensor([0.0, 0.3]), a + torch.tensor([0.0, -0.7])], 1)
    stats = trajectory_crossings(parallel)
    assert stats.pairs == 0 and stats.fraction == 0.0 and stats.per_trajectory == 0.0
    # meeting only at an end point is not a proper crossing
    touch = torch.stack([a, torch.tensor([[1.0, 0.5], [1.0, 2.0], [1.0, 3.0]])], 1)
    assert trajectory_crossings(touch).pairs == 0


@pytest.mark.parametrize("chunk", [1, 3, 5, 8])
def test_trajectory_crossings_match_brute_force(chunk):
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        m, steps = 12, 7
        # random walks with a drift: some pairs cross, some don't
        start = torch.randn(1, m, 2, generator=g)
        walk = torch.cumsum(0.4 * torch.randn(steps, m, 2, generator=g), dim=0)
        traj = torch.cat([start, start + walk])
        expected = brute_force_crossings(traj)
        stats = trajectory_crossings(traj, chunk=chunk)
        assert stats.pairs == expected, (seed, chunk)
        assert stats.fraction == pytest.approx(expected / (m * (m - 1) / 2))
        assert stats.per_trajectory == pytest.approx(2 * expected / m)
    assert 0 < expected < m * (m - 1) // 2  # the random case is not trivial


def test_coupling_crossings_match_brute_force(gen):
    x0, x1 = torch.rand(40, 2, generator=gen), torch.rand(40, 2, generator=gen)
    traj = torch.stack([x0, x1])  # one segment per pair
    expected = brute_force_crossings(traj)
    assert expected > 0
    assert coupling_crossings(x0, x1).pairs == expected
    assert trajectory_crossings(traj).pairs == expected


def test_crossings_on_inputs_large_enough_to_be_blocked(gen):
    # coupling_crossings works in blocks of 512 rows and trajectory_crossings in blocks of 1024
    # chunks; compare both with the full all-pairs matrix of segments_cross (checked above against
    # the brute-force reference)
    x0, x1 = torch.rand(700, 2, generator=gen), torch.rand(700, 2, generator=gen)
    x1 = x0 + 0.1 * (x1 - x0)  # short segments: a sparse, non-trivial crossing pattern
    full = segments_cross(
        x0.double()[:, None], x1.double()[:, None], x0.double()[None], x1.double()[None]
    )
    expected = int(torch.triu(full, diagonal=1).sum())
    assert expected > 0
    assert coupling_crossings(x0, x1).pairs == expected

    m, steps = 110, 11  # 110 * 11 = 1210 one-segment chunks
    start = 3 * torch.rand(1, m, 2, generator=gen)
    traj = torch.cat(
        [start, start + torch.cumsum(0.1 * torch.randn(steps, m, 2, generator=gen), 0)]
    )
    seg_p = traj[:-1].transpose(0, 1).reshape(-1, 2).double()  # (m * steps, 2), grouped by curve
    seg_q = traj[1:].transpose(0, 1).reshape(-1, 2).double()
    hits = segments_cross(seg_p[:, None], seg_q[:, None], seg_p[None], seg_q[None])
    per_curve = hits.reshape(m, steps, m, steps).any(dim=3).any(dim=1)
    expected = int(torch.triu(per_curve, diagonal=1).sum())
    assert expected > 0
    for chunk in (1, 4):
        assert trajectory_crossings(traj, chunk=chunk).pairs == expected


def test_segments_cross_broadcasts():
    p1, q1 = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    p2 = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    q2 = torch.tensor([[1.0, 0.0], [0.2, 0.9], [3.0, 1.0]])
    assert segments_cross(p1, q1, p2, q2).tolist() == [True, False, False]


def test_crossings_bad_inputs():
    with pytest.raises(ValueError, match="2D points"):
        trajectory_crossings(torch.zeros(4, 3, 3))
    with pytest.raises(ValueError, match="same shape"):
        coupling_crossings(torch.zeros(4, 2), torch.zeros(5, 2))
    assert trajectory_crossings(torch.zeros(5, 1, 2)).pairs == 0  # one trajectory
