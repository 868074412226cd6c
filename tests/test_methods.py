"""Methods: the equivalences that pin down bezkit's readings of the papers (METHODS.md 4 and 6)."""

from __future__ import annotations

import copy

import pytest
import torch

from bezkit.couplings import PairPool, ReflowCoupling
from bezkit.data import get_sampler
from bezkit.methods import (
    BDenseConfig,
    BDenseLoss,
    BezierDistillConfig,
    bdense_distill,
    bezier_distill,
    branched_from_teacher,
    distill,
    make_bezier_pairs,
    make_trajectory_pool,
    new_mlp,
    reflow_round,
    train_flow,
)
from bezkit.methods.reflow import ReflowConfig
from bezkit.paths import BezierPath
from bezkit.solvers import solve_ode
from bezkit.training import TrainConfig

SRC, TGT = get_sampler("8gaussians"), get_sampler("moons")


def cfg(steps: int = 15, seed: int = 3) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=64, lr=1e-3, seed=seed, progress=False, device="cpu")


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    from bezkit.couplings import IndependentCoupling

    res = train_flow(new_mlp(hidden=32, depth=2, seed=1), IndependentCoupling(SRC, TGT), cfg(60))
    return res.model.eval()


def test_order_one_bezier_distillation_is_reflow_distillation(teacher):
    pair_cfg = dict(n_pairs=256, teacher_steps=8, pair_seed=11)
    reference = distill(teacher, ReflowCoupling(teacher, SRC, n_pairs=256, steps=8, seed=11), cfg())
    bez = bezier_distill(
        [teacher],
        SRC,
        TGT,
        cfg(),
        BezierDistillConfig(
            order=1, endpoint="teacher", target="tangent", distill_steps=1, **pair_cfg
        ),
    )
    assert len(reference.losses) == len(bez.losses) == 15
    torch.testing.assert_close(
        torch.tensor(bez.losses), torch.tensor(reference.losses), rtol=1e-5, atol=1e-6
    )


def test_secant_bezier_distillation_on_a_line_is_the_tangent_one(teacher):
    """Order 1: the secant is the tangent, so the N-step runs are the same run."""
    pair_cfg = dict(order=1, endpoint="teacher", distill_steps=2, n_pairs=256, teacher_steps=8)
    runs = [
        bezier_distill([teacher], SRC, TGT, cfg(), BezierDistillConfig(target=t, **pair_cfg))
        for t in ("tangent", "secant")
    ]
    torch.testing.assert_close(torch.tensor(runs[1].losses), torch.tensor(runs[0].losses))
    with pytest.raises(ValueError, match="distill_steps=N"):
        BezierDistillConfig(target="secant").validate(1)


def test_order_one_bezier_with_uniform_time_is_reflow_training(teacher):
    coupling = ReflowCoupling(teacher, SRC, n_pairs=256, steps=8, seed=5)
    rnd = reflow_round(teacher, SRC, cfg(), ReflowConfig(k=2), coupling=coupling)
    bez = bezier_distill(
        [teacher],
        SRC,
        TGT,
        cfg(),
        BezierDistillConfig(
            order=1, endpoint="teacher", target="tangent", n_pairs=256, teacher_steps=8, pair_seed=5
        ),
    )
    torch.testing.assert_close(
        torch.tensor(bez.losses), torch.tensor(rnd.losses), rtol=1e-5, atol=1e-6
    )


def test_bdense_with_one_branch_is_plain_distillation(teacher):
    reference = distill(teacher, ReflowCoupling(teacher, SRC, n_pairs=256, steps=8, seed=2), cfg())
    dense = bdense_distill(
        teacher, SRC, cfg(), BDenseConfig(num_branches=1, n_pairs=256, teacher_steps=8, pair_seed=2)
    )
    torch.testing.assert_close(
        torch.tensor(dense.losses), torch.tensor(reference.losses), rtol=1e-4, atol=1e-6
    )


def test_branched_student_starts_as_the_teacher(teacher):
    student = branched_from_teacher(teacher, 4)
    x = SRC.sample(32, torch.Generator().manual_seed(0))
    t = torch.rand(32, generator=torch.Generator().manual_seed(1))
    u = student.velocities(x, t)
    for j in range(4):
        torch.testing.assert_close(u[:, j], teacher(x, t))
    # one-step sampling reads branch K, which is one Euler step of the teacher at t = 0
    torch.testing.assert_close(student.sample(x, 1), solve_ode(teacher, x, steps=1).x)


def test_trajectory_pool_holds_teacher_states_at_branch_times(teacher):
    pool = make_trajectory_pool(teacher, SRC, num_branches=4, n_pairs=64, teacher_steps=8, seed=4)
    x0 = SRC.sample(64, torch.Generator().manual_seed(4))
    sol = solve_ode(teacher, x0, steps=8, record=True)
    states = [pool.pairs.x0, *pool.pairs.guides, pool.pairs.x1]
    for j, state in enumerate(states):
        torch.testing.assert_close(state, sol.trajectory[2 * j])


def test_bdense_loss_is_zero_for_a_perfect_student():
    # a student whose branch j outputs exactly Z_{t_j}: the straight field v = c (constant)
    class Const(torch.nn.Module):
        def forward(self, x, t):
            return torch.ones(x.shape[0], 4 * 2) * 0.5

    from bezkit.couplings import Pairs
    from bezkit.models import BranchedVelocity

    model = BranchedVelocity(Const(), 4)
    x0 = torch.randn(16, 2)
    states = [x0 + 0.5 * s for s in (0.25, 0.5, 0.75, 1.0)]
    pairs = Pairs(x0, states[-1], tuple(states[:-1]))
    for restarts in (False, True):
        loss = BDenseLoss(4, restarts=restarts)(model, pairs, torch.Generator().manual_seed(0))
        assert float(loss) < 1e-12
    wrong = Pairs(x0, states[-1] + 1.0, tuple(states[:-1]))
    assert float(BDenseLoss(4)(model, wrong, torch.Generator())) == pytest.approx(0.25, rel=1e-5)


def test_reflow_pairs_generated_once_and_reused(teacher):
    coupling = ReflowCoupling(teacher, SRC, n_pairs=128, steps=4, seed=0)
    rnd = reflow_round(teacher, SRC, cfg(20), ReflowConfig(k=2), coupling=coupling)
    assert coupling.generation_count == 1
    distill(rnd.model, coupling, cfg(10))
    assert coupling.generation_count == 1
    assert rnd.pairs is coupling.pairs


def test_data_anchored_bezier_pairs_keep_the_real_data(teacher):
    bcfg = BezierDistillConfig(order=2, endpoint="data", n_pairs=128, teacher_steps=6, pair_seed=9)
    pool = make_bezier_pairs([teacher], SRC, TGT, bcfg)
    real = TGT.sample(128, torch.Generator().manual_seed(9))
    assert torch.equal(pool.pairs.x1, real)
    # X0 is the reverse ODE of the real data; the forward ODE brings it (nearly) back
    back = solve_ode(teacher, pool.pairs.x0, steps=6).x
    assert (back - real).norm(dim=1).mean() < 0.2 * real.norm(dim=1).mean()


def test_quadratic_guide_is_the_teachers_euler_state(teacher):
    bcfg = BezierDistillConfig(
        order=2, endpoint="teacher", n_pairs=64, teacher_steps=4, guide_times=(0.3,), pair_seed=1
    )
    pool = make_bezier_pairs([teacher], SRC, TGT, bcfg)
    x0 = pool.pairs.x0
    expected = x0 + 0.3 * teacher(x0, torch.zeros(64))
    torch.testing.assert_close(pool.pairs.guides[0], expected)


def test_interpolated_cubic_passes_through_two_teachers_states(teacher):
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    bcfg = BezierDistillConfig(
        order=3,
        endpoint="independent",
        placement="interpolate",
        guide_state="ode",
        n_pairs=32,
        teacher_steps=10,
        pair_seed=0,
    )
    pool = make_bezier_pairs([teacher, other], SRC, TGT, bcfg)
    p = pool.pairs
    for tch, s in zip((teacher, other), (1 / 3, 2 / 3), strict=True):
        state = solve_ode(tch, p.x0, steps=round(10 * s), t_end=s).x
        on_curve = BezierPath(3).point(p.x0, p.x1, torch.full((32,), s), p.guides)
        torch.testing.assert_close(on_curve, state, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "n_teachers", "match"),
    [
        ({"order": 0}, 1, "order"),
        ({"order": 2, "guide_times": (1.0,)}, 1, r"\(0, 1\)"),
        ({"order": 2, "guide_times": (0.0,)}, 1, r"\(0, 1\)"),
        ({"order": 3}, 3, "teachers"),
        ({"order": 4}, 2, "teachers"),
        ({"endpoint": "fake"}, 1, "endpoint"),
        ({"placement": "nowhere"}, 1, "placement"),
        ({"target": "middle"}, 1, "target"),
        ({"order": 3, "guide_times": (0.5,)}, 1, "guide time"),
    ],
)
def test_bad_bezier_options_fail_before_training(kwargs, n_teachers, match):
    with pytest.raises(ValueError, match=match):
        BezierDistillConfig(**kwargs).validate(n_teachers)


def test_pair_pool_refuses_nan():
    from bezkit.couplings import Pairs

    x = torch.zeros(4, 2)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        PairPool(Pairs(x, torch.zeros(4, 2)))


def test_students_of_an_ema_teacher_can_train():
    from bezkit.couplings import IndependentCoupling

    res = train_flow(
        new_mlp(hidden=16, depth=1, seed=0),
        IndependentCoupling(SRC, TGT),
        TrainConfig(steps=5, batch_size=32, ema_decay=0.9, progress=False, device="cpu"),
    )
    ema_teacher = res.model
    assert ema_teacher is res.ema_model
    assert not any(p.requires_grad for p in ema_teacher.parameters())
    coupling = ReflowCoupling(ema_teacher, SRC, n_pairs=64, steps=2)
    out = distill(ema_teacher, coupling, cfg(3))
    assert len(out.losses) == 3
