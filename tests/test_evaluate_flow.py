"""evaluate_flow: the one evaluation of a flow, shared by ``bezkit evaluate`` and the experiment."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from bezkit.data.toy2d import get_sampler
from bezkit.experiments.evaluate import (
    evaluate_chain_model,
    evaluate_flow,
    evaluate_student,
    make_eval_draws,
)
from bezkit.metrics import sliced_wasserstein2, trajectory_crossings, wasserstein2
from bezkit.models import MLPVelocity
from bezkit.solvers import solve_ode


class Constant(nn.Module):
    """``v(x, t) = c``: every path is the straight line ``x0 + t c``."""

    def __init__(self, c: tuple[float, float]) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c), requires_grad=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.c.expand_as(x)


class Rotation(nn.Module):
    """``v(x, t) = (-x_2, x_1)``: curved paths (quarter-turn arcs over t in [0, pi/2])."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.stack([-x[:, 1], x[:, 0]], dim=1)


def test_a_constant_velocity_is_a_translation_and_straight():
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    c = (1.5, -0.5)
    ev = evaluate_flow(Constant(c), x0, x0 + torch.tensor(c), steps=(4, 1), paths=True)
    assert [s.steps for s in ev.samples] == [1, 4] and [s.nfe for s in ev.samples] == [1, 4]
    for s in ev.samples:  # Z_1 = x0 + c exactly: W2 to the translated sample is 0
        assert s.w2 == pytest.approx(0.0, abs=1e-6)
    assert ev.paths is not None and ev.paths.steps == 4 and ev.paths.n == 64
    assert ev.paths.straightness == pytest.approx(0.0, abs=1e-10)
    assert ev.paths.curvature == pytest.approx(0.0, abs=1e-10)
    assert ev.paths.transport_cost == pytest.approx(c[0] ** 2 + c[1] ** 2)
    assert ev.paths.path_energy == pytest.approx(c[0] ** 2 + c[1] ** 2)
    assert ev.paths.crossings.pairs == 0  # parallel segments never cross
    assert ev.reverse_w2 is None and "reverse_w2" not in ev.to_dict()


def test_curved_paths_and_the_reverse_flow():
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(50, 2, generator=torch.Generator().manual_seed(2))
    ev = evaluate_flow(Rotation(), x0, ref, steps=(8,), paths=True, reverse_to=x0)
    assert ev.paths is not None and ev.paths.straightness > 0 and ev.paths.curvature > 0
    # normalised straightness is straightness / E||Z1 - Z0||^2
    assert ev.paths.normalised_straightness == pytest.approx(
        ev.paths.straightness / ev.paths.transport_cost
    )
    # the reverse Euler flow of the rotation from ref, measured against x0
    back = ref.clone()
    for i in range(8):
        back = back - (1 / 8) * Rotation()(back, torch.full((50,), 1 - i / 8))
    assert ev.reverse_w2 == pytest.approx(wasserstein2(back, x0))


def test_trajectories_on_a_subset_and_seeded_crossings():
    torch.manual_seed(0)
    model = MLPVelocity(2, hidden=16, depth=2)
    x0 = torch.randn(120, 2, generator=torch.Generator().manual_seed(3))
    ref = torch.randn(120, 2, generator=torch.Generator().manual_seed(4))
    whole = evaluate_flow(model, x0, ref, steps=(1, 6), paths=True, crossings=30)
    first = evaluate_flow(model, x0, ref, steps=(1, 6), paths=True, trajectories=40, crossings=30)
    seeded = evaluate_flow(model, x0, ref, steps=(6,), paths=True, crossings=30, crossing_seed=7)
    assert whole.paths is not None and first.paths is not None and seeded.paths is not None
    assert whole.paths.n == 120 and first.paths.n == 40 and whole.paths.crossings.m == 30
    assert whole.w2(6) == first.w2(6)  # the samples do not depend on where paths are measured
    # Recount the seeded subset's crossings on the solver's own trajectories: a hand-written Euler
    # loop rounds differently (x + v / 6 against x + dt * v), and a pair of an untrained model's
    # trajectories that nearly touch could then count differently on another CPU.
    traj = solve_ode(model, x0, steps=6, record=True).recorded_trajectory()
    subset = torch.randperm(120, generator=torch.Generator().manual_seed(7))[:30]
    expected = trajectory_crossings(traj[:, subset])
    assert seeded.paths.crossings.pairs == expected.pairs
    with pytest.raises(KeyError, match="no samples with 3 steps"):
        whole.w2(3)


def test_bad_input_is_refused():
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="at least one step count"):
        evaluate_flow(Constant((0.0, 0.0)), x0, x0, steps=())
    with pytest.raises(ValueError, match="NaN or inf with euler at 1 steps"):
        evaluate_flow(Constant((math.inf, 0.0)), x0, x0, steps=(1,))
    with pytest.raises(ValueError, match="custom generate"):
        evaluate_flow(
            Constant((0.0, 0.0)), x0, x0, steps=(1,), paths=True, generate=lambda m, x, s: x
        )


def test_the_experiment_readings_are_evaluate_flow_per_draw():
    torch.manual_seed(0)
    model = MLPVelocity(2, hidden=16, depth=2)
    draws = make_eval_draws(
        get_sampler("8gaussians"), get_sampler("moons"), n=64, draws=2, seed=0, n_projections=32
    )
    student = evaluate_student(model, draws, [2, 1], exact_steps=(2,))
    chain = evaluate_chain_model(model, draws, many_steps=4, m_paths=32, m_crossings=16)
    for d, (x0, ref) in enumerate(zip(draws.x0, draws.reference, strict=True)):
        ev = evaluate_flow(model, x0, ref, steps=(1, 2), w2=draws.w2)
        assert student["w2"]["1"][d] == ev.w2(1) and student["w2"]["2"][d] == ev.w2(2)
        assert student["w2_exact"]["2"][d] == pytest.approx(wasserstein2(ev_x1(model, x0, 2), ref))
        assert chain["w2"]["4"][d] == pytest.approx(
            sliced_wasserstein2(
                ev_x1(model, x0, 4), ref, n_projections=32, seed=draws.projection_seed
            )
        )
    assert set(student["w2_exact"]) == {"2"} and len(chain["crossings_per_trajectory"]) == 2
    # NPE per draw: |path energy - W2^2(Z_0, reference)| / W2^2, the exact W2 on the m_paths points
    for d, (x0, ref) in enumerate(zip(draws.x0, draws.reference, strict=True)):
        ev = evaluate_flow(
            model, x0, ref, steps=(4,), w2=draws.w2, paths=True, trajectories=32, crossings=16
        )
        w2_sq = wasserstein2(x0[:32], ref[:32]) ** 2
        want = abs(ev.paths.path_energy - w2_sq) / w2_sq
        assert chain["normalised_path_energy"][d] == pytest.approx(want, rel=1e-6)


def ev_x1(model: nn.Module, x0: Tensor, steps: int) -> Tensor:
    """``steps`` Euler steps of the model from ``x0``, written out."""
    x = x0
    with torch.no_grad():
        for i in range(steps):
            x = x + model(x, torch.full((x.shape[0],), i / steps)) / steps
    return x
