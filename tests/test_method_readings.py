"""The readings added for issue 8: the literal one-step guide and B-DENSE's restart sampler."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bezkit.data import get_sampler
from bezkit.methods import BezierDistillConfig, branched_from_teacher, make_bezier_pairs, new_mlp
from bezkit.methods.bezier_distillation import teacher_state
from bezkit.models import BranchedVelocity, EnsembleVelocity
from bezkit.solvers import bdense_hop_times, sample_bdense, solve_ode

pytestmark = pytest.mark.usefixtures("single_thread")

SRC, TGT = get_sampler("8gaussians"), get_sampler("moons")


def teacher(seed: int = 1) -> nn.Module:
    return new_mlp(hidden=16, depth=2, seed=seed).eval()


# -- the literal guide X_T = X0 + v_T(X0, 0) ------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["teacher", "data", "independent"])
def test_one_step_guide_is_x0_plus_one_full_teacher_step(endpoint):
    tch = teacher()
    cfg = BezierDistillConfig(
        order=2, guide_state="one-step", endpoint=endpoint, n_pairs=64, teacher_steps=4
    )
    pairs = make_bezier_pairs([tch], SRC, TGT, cfg).pairs
    with torch.no_grad():
        want = pairs.x0 + tch(pairs.x0, torch.zeros(len(pairs)))
    assert len(pairs.guides) == 1
    assert torch.equal(pairs.guides[0], want)
    # it is the Euler state at s = 1, and differs from the default Euler state at s = 1/2
    assert torch.equal(teacher_state(tch, pairs.x0, 1.0, how="euler"), want)
    default = make_bezier_pairs(
        [tch], SRC, TGT, BezierDistillConfig(**{**cfg.__dict__, "guide_state": "euler"})
    )
    assert not torch.allclose(default.pairs.guides[0], want)


def test_one_step_guides_from_several_teachers():
    teachers = [teacher(1), teacher(2)]
    cfg = BezierDistillConfig(
        order=3, guide_state="one-step", endpoint="independent", n_pairs=32, teacher_steps=4
    )
    pairs = make_bezier_pairs(teachers, SRC, TGT, cfg).pairs
    zero = torch.zeros(len(pairs))
    with torch.no_grad():
        for guide, tch in zip(pairs.guides, teachers, strict=True):
            assert torch.equal(guide, pairs.x0 + tch(pairs.x0, zero))


def test_one_step_guide_rejects_options_it_cannot_honour():
    tch = teacher()
    with pytest.raises(ValueError, match="only placement='control'"):
        make_bezier_pairs(
            [tch], SRC, TGT, BezierDistillConfig(guide_state="one-step", placement="interpolate")
        )
    with pytest.raises(ValueError, match="guide_times have no effect"):
        make_bezier_pairs(
            [tch], SRC, TGT, BezierDistillConfig(guide_state="one-step", guide_times=(0.3,))
        )
    with pytest.raises(ValueError, match="unknown guide state 'half'"):
        make_bezier_pairs([tch], SRC, TGT, BezierDistillConfig(guide_state="half"))
    with pytest.raises(ValueError, match="unknown guide state"):
        teacher_state(tch, torch.zeros(3, 2), 0.5, how="half")


def test_teacher_state_readings(gen):
    tch = teacher()
    x0 = torch.randn(20, 2, generator=gen)
    zero = torch.zeros(20)
    with torch.no_grad():
        v0 = tch(x0, zero)
    torch.testing.assert_close(teacher_state(tch, x0, 0.25), x0 + 0.25 * v0)
    ode = teacher_state(tch, x0, 0.5, how="ode", steps=8)
    torch.testing.assert_close(ode, solve_ode(tch, x0, steps=4, t_end=0.5).x)


# -- B-DENSE's restart sampler ------------------------------------------------------------------


class ExactDecay(nn.Module):
    """A network whose branches are exact for the flow dZ/dt = -Z: ``Z_{t_j} = x e^{-(t_j - s)}``.

    ``u_j(x, s) = x (e^{-(t_j - s)} - 1) / (t_j - s)``, so ``branch_j(x, s) = x e^{-(t_j - s)}``.
    """

    def __init__(self, times: tuple[float, ...]) -> None:
        super().__init__()
        self.times = times

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gaps = torch.tensor(self.times, dtype=x.dtype)[None, :] - s[:, None]  # (n, K)
        scale = torch.expm1(-gaps) / gaps
        return torch.cat([x * scale[:, j, None] for j in range(len(self.times))], dim=1)


def test_one_step_reads_the_last_branch_and_k_steps_use_every_branch(gen):
    k = 4
    model = branched_from_teacher(teacher(), k)
    with torch.no_grad():  # make the branches different from each other
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    x = torch.randn(50, 2, generator=gen)
    one = sample_bdense(model, x, steps=1)
    torch.testing.assert_close(one.x, model.branches(x, torch.zeros(50))[:, -1])
    assert one.nfe == 1 and one.times.tolist() == [0.0, 1.0]
    # K steps by hand: from the state at t_{j-1}, branch j
    state, s = x, 0.0
    for j in range(k):
        state = model.branches(state, torch.full((50,), s))[:, j].detach()
        s = model.times[j]
    full = sample_bdense(model, x, steps=k, record=True)
    torch.testing.assert_close(full.x, state)
    assert full.nfe == k and full.trajectory.shape == (k + 1, 50, 2)
    torch.testing.assert_close(full.times, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(full.trajectory[-1], full.x)
    assert torch.equal(full.trajectory[0], x)
    # two steps use branches 2 and 4, and the model's own method is this sampler
    assert bdense_hop_times(model.times, 2) == (1, 3)
    torch.testing.assert_close(model.sample(x, steps=2), sample_bdense(model, x, steps=2).x)
    assert not torch.allclose(sample_bdense(model, x, steps=2).x, one.x)


def test_exact_branches_give_the_same_sample_at_every_step_count(gen):
    times = (0.25, 0.5, 0.75, 1.0)
    model = BranchedVelocity(ExactDecay(times), 4)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    for steps in (1, 2, 4):
        torch.testing.assert_close(sample_bdense(model, x, steps=steps).x, x * math.exp(-1.0))


def test_restart_sampler_runs_an_ensemble_per_seed(gen):
    models = [branched_from_teacher(teacher(s), 2) for s in (1, 2, 3)]
    ens = EnsembleVelocity(models)
    x = torch.randn(60, 2, generator=gen)
    for steps in (1, 2):
        alone = torch.cat(
            [
                sample_bdense(m, x[20 * i : 20 * (i + 1)], steps=steps).x
                for i, m in enumerate(models)
            ]
        )
        torch.testing.assert_close(
            sample_bdense(ens, x, steps=steps).x, alone, rtol=1e-5, atol=1e-6
        )


def test_restart_sampler_errors(gen):
    model = branched_from_teacher(teacher(), 4)
    x = torch.randn(5, 2, generator=gen)
    with pytest.raises(ValueError, match="steps must divide the number of branches 4"):
        sample_bdense(model, x, steps=3)
    with pytest.raises(ValueError, match="steps must divide"):
        sample_bdense(model, x, steps=0)
    with pytest.raises(TypeError, match="branched model"):
        sample_bdense(teacher(), x)
    with pytest.raises(ValueError, match="NaN"):
        sample_bdense(model, torch.full((5, 2), float("nan")))
