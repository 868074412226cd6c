"""Seed ensembles: S seeds trained as one vectorised model give each seed's solo training run."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.methods.bdense import BDenseLoss, branched_from_teacher
from bezkit.methods.flow import new_mlp
from bezkit.models.ensemble import EnsembleVelocity, seed_block_size
from bezkit.paths.bezier import BezierPath
from bezkit.paths.time_sampling import distill_times
from bezkit.solvers.ode import solve_ode
from bezkit.training.config import TrainConfig
from bezkit.training.ensemble import (
    clip_grad_norm_per_model,
    seed_blocked_pairs,
    train_ensemble,
)
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import train

pytestmark = pytest.mark.usefixtures("single_thread")

SEEDS = [3, 11, 42]
CONFIG = TrainConfig(
    steps=200,
    batch_size=64,
    lr=2e-3,
    warmup_steps=20,
    grad_clip=0.5,  # small enough to clip on most steps: per-seed clipping is exercised
    ema_decay=0.95,
    progress=False,
    device="cpu",
)


def pools(num_guides: int = 0, n: int = 300) -> list[PairPool]:
    """One pool per seed (in a reflow chain every seed has its own teacher and pairs)."""
    out = []
    for s in range(len(SEEDS)):
        g = torch.Generator().manual_seed(100 + s)
        x0 = torch.randn(n, 2, generator=g)
        x1 = torch.randn(n, 2, generator=g) * 0.5 + torch.tensor([3.0, -1.0])
        guides = tuple(torch.randn(n, 2, generator=g) for _ in range(num_guides))
        out.append(PairPool(Pairs(x0, x1, guides)))
    return out


def mlps(hidden: int = 32) -> list[torch.nn.Module]:
    return [new_mlp(hidden=hidden, depth=2, seed=s) for s in range(len(SEEDS))]


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module, *, rtol: float, atol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=rtol, atol=atol, msg=k)


def solo_and_ensemble(models, loss, batch_pools, config=CONFIG):
    solo = [
        train(
            copy.deepcopy(models[s]),
            loss,
            batch_pools[s].sample,
            dataclasses.replace(config, seed=SEEDS[s]),
        )
        for s in range(len(SEEDS))
    ]
    together = train_ensemble(
        [copy.deepcopy(m) for m in models], loss, [p.sample for p in batch_pools], config, SEEDS
    )
    return solo, together


def check_matches_solo(solo, together) -> None:
    assert len(together) == len(solo)
    for a, b in zip(solo, together, strict=True):
        assert len(b.losses) == CONFIG.steps
        torch.testing.assert_close(
            torch.tensor(b.losses), torch.tensor(a.losses), rtol=1e-4, atol=1e-6
        )
        assert_same_state(a.raw_model, b.raw_model, rtol=1e-4, atol=1e-5)
        assert_same_state(a.ema_model, b.ema_model, rtol=1e-4, atol=1e-5)
        assert not b.raw_model.training and not b.ema_model.training


def check_seeds_differ(together) -> None:
    for i in range(len(together)):
        for j in range(i + 1, len(together)):
            assert together[i].losses != together[j].losses
            wi = torch.cat([p.flatten() for p in together[i].raw_model.parameters()])
            wj = torch.cat([p.flatten() for p in together[j].raw_model.parameters()])
            assert (wi - wj).abs().max() > 1e-2


@pytest.mark.parametrize(
    ("name", "loss", "num_guides"),
    [
        ("uniform-t linear", FlowMatchingLoss(), 0),
        ("t = 0 linear", FlowMatchingLoss(time_sampler=distill_times(1)), 0),
        ("uniform-t quadratic endpoint", FlowMatchingLoss(BezierPath(2), target="endpoint"), 1),
    ],
)
def test_flow_matching_ensemble_equals_solo_training(name, loss, num_guides):
    models = mlps()
    solo, together = solo_and_ensemble(models, loss, pools(num_guides))
    check_matches_solo(solo, together)
    check_seeds_differ(together)
    # the weights moved: the comparison is not between two untrained copies
    assert_moved = [
        (a.raw_model.net[0].weight - m.net[0].weight).abs().max() for a, m in zip(solo, models)
    ]
    assert min(assert_moved) > 1e-2


@pytest.mark.parametrize("restarts", [False, True])
def test_bdense_ensemble_equals_solo_training(restarts):
    k = 2
    models = [branched_from_teacher(m, k) for m in mlps()]
    solo, together = solo_and_ensemble(models, BDenseLoss(k, restarts=restarts), pools(k - 1))
    check_matches_solo(solo, together)
    check_seeds_differ(together)


def test_same_seed_and_inputs_give_identical_members():
    model = new_mlp(hidden=16, depth=1, seed=0)
    pool = pools()[0]
    cfg = dataclasses.replace(CONFIG, steps=20)
    runs = train_ensemble(
        [copy.deepcopy(model), copy.deepcopy(model)],
        FlowMatchingLoss(),
        [pool.sample] * 2,
        cfg,
        [7, 7],
    )
    assert runs[0].losses == runs[1].losses
    assert_same_state(runs[0].raw_model, runs[1].raw_model, rtol=0, atol=0)


def test_block_losses_are_the_solo_losses(make_gen):
    models = mlps()
    ens = EnsembleVelocity(models)
    batches = [p.sample(50, make_gen(s)) for s, p in enumerate(pools(1))]
    blocked = seed_blocked_pairs(batches)
    for loss in (
        FlowMatchingLoss(BezierPath(2), target="endpoint"),
        BDenseLoss(2, restarts=True),
    ):
        nets = models if isinstance(loss, FlowMatchingLoss) else None
        if nets is None:
            nets = [branched_from_teacher(m, 2) for m in models]
        ens = EnsembleVelocity(nets)
        per_seed = loss.block_losses(ens, blocked, [make_gen(10 + s) for s in range(3)])
        solo = torch.stack(
            [loss(m, b, make_gen(10 + s)) for s, (m, b) in enumerate(zip(nets, batches))]
        )
        torch.testing.assert_close(per_seed, solo, rtol=1e-5, atol=1e-7)
        mean = loss(ens, blocked, [make_gen(10 + s) for s in range(3)])
        torch.testing.assert_close(mean, solo.mean(), rtol=1e-5, atol=1e-7)


def test_ensemble_gradient_of_summed_losses_is_each_solo_gradient(make_gen):
    models = mlps()
    ens = EnsembleVelocity(models)
    batches = [p.sample(40, make_gen(s)) for s, p in enumerate(pools())]
    loss = FlowMatchingLoss()
    loss.block_losses(
        ens, seed_blocked_pairs(batches), [make_gen(5 + s) for s in range(3)]
    ).sum().backward()
    for s, (m, b) in enumerate(zip(models, batches)):
        m.zero_grad()
        loss(m, b, make_gen(5 + s)).backward()
        for (name, p), stacked in zip(m.named_parameters(), ens.params):
            torch.testing.assert_close(stacked.grad[s], p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_per_model_clipping_matches_torch_clip(make_gen):
    grads = [torch.randn(3, 4, 5, generator=make_gen(0)), torch.randn(3, 5, generator=make_gen(1))]
    grads[0][1] *= 1e-3  # seed 1 below the threshold: left alone
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norms = clip_grad_norm_per_model(params, 1.0)
    for s in range(3):
        solo = [torch.zeros_like(g[s], requires_grad=True) for g in grads]
        for p, g in zip(solo, grads):
            p.grad = g[s].clone()
        norm = torch.nn.utils.clip_grad_norm_(solo, 1.0)
        torch.testing.assert_close(norms[s], norm)
        for p, q in zip(params, solo):
            torch.testing.assert_close(p.grad[s], q.grad)


def test_unstack_round_trip_and_modes():
    models = [branched_from_teacher(m, 3) for m in mlps()]
    ens = EnsembleVelocity(models)
    back = ens.unstack()
    assert len(back) == 3 and ens.num_models == 3
    for a, b in zip(models, back):
        assert type(b) is type(a) and b.times == a.times
        assert_same_state(a, b, rtol=0, atol=0)
        assert not b.training
        assert all(p.device.type == "cpu" for p in b.parameters())
    # unstacked models are independent of the ensemble and of each other
    with torch.no_grad():
        back[0].net.net[0].weight.add_(1.0)
    assert_same_state(models[1], back[1], rtol=0, atol=0)
    assert not torch.equal(back[0].net.net[0].weight, models[0].net.net[0].weight)
    assert ens.times == models[0].times and ens.num_branches == 3


def test_ensemble_sampling_equals_per_model_sampling(make_gen):
    models = [m.eval() for m in mlps()]
    ens = EnsembleVelocity(models).eval()
    x0 = [torch.randn(64, 2, generator=make_gen(s)) for s in range(3)]
    for method, steps in (("euler", 8), ("rk4", 4)):
        together = solve_ode(ens, torch.cat(x0), method=method, steps=steps)
        alone = torch.cat(
            [solve_ode(m, x, method=method, steps=steps).x for m, x in zip(models, x0)]
        )
        torch.testing.assert_close(together.x, alone, rtol=1e-5, atol=1e-6)
    branched = [branched_from_teacher(m, 2) for m in models]
    ens_b = EnsembleVelocity(branched)
    t = torch.rand(192, generator=make_gen(9))
    x = torch.cat(x0)
    alone = torch.cat(
        [
            b.branches(x[64 * s : 64 * (s + 1)], t[64 * s : 64 * (s + 1)])
            for s, b in enumerate(branched)
        ]
    )
    torch.testing.assert_close(ens_b.branches(x, t), alone, rtol=1e-5, atol=1e-6)


def test_bad_inputs_get_clear_errors():
    models = mlps()
    pool = pools()
    with pytest.raises(ValueError, match="one batch source and one seed per model"):
        train_ensemble(models, FlowMatchingLoss(), [p.sample for p in pool], CONFIG, [1, 2])
    with pytest.raises(TypeError, match="block_losses"):
        train_ensemble(
            models,
            lambda m, p, g: m(p.x0, torch.zeros(len(p))).sum(),
            [p.sample for p in pool],
            CONFIG,
            SEEDS,
        )
    with pytest.raises(ValueError, match="own model object"):
        train_ensemble([models[0]] * 3, FlowMatchingLoss(), [p.sample for p in pool], CONFIG, SEEDS)
    with pytest.raises(ValueError, match="checkpoints"):
        cfg = dataclasses.replace(CONFIG, checkpoint_path="x.safetensors")
        train_ensemble(models, FlowMatchingLoss(), [p.sample for p in pool], cfg, SEEDS)
    with pytest.raises(ValueError, match="one architecture"):
        EnsembleVelocity([new_mlp(hidden=16, seed=0), new_mlp(hidden=32, seed=1)])
    with pytest.raises(TypeError, match="one class"):
        EnsembleVelocity([models[0], branched_from_teacher(models[1], 1)])
    with pytest.raises(ValueError, match="at least one model"):
        EnsembleVelocity([])
    ens = EnsembleVelocity(models)
    with pytest.raises(ValueError, match="3 equal blocks"):
        ens(torch.zeros(10, 2), torch.zeros(10))
    with pytest.raises(AttributeError, match="no method 'branches'"):
        ens.branches(torch.zeros(9, 2), torch.zeros(9))
    with pytest.raises(ValueError, match="equal sizes"):
        seed_blocked_pairs([pool[0].sample(4), pool[1].sample(5)])
    assert seed_block_size(12, 3) == 4
    with pytest.raises(ValueError, match=">= 1"):
        seed_block_size(12, 0)


class Scaled(torch.nn.Module):
    """Not an MLPVelocity: the ensemble runs it through vmap of functional_call."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(2, 3, generator=g))
        self.register_buffer("scale", torch.full((2,), 1.0 + seed))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(self.lin(torch.cat([x, t[:, None]], dim=1)))


def test_other_architectures_run_through_vmap(make_gen):
    models = [Scaled(s) for s in range(3)]
    ens = EnsembleVelocity(models)
    assert ens.vectorised_by == "vmap"  # no batched-matmul form: the generic path is tested here
    x, t = torch.randn(30, 2, generator=make_gen(0)), torch.rand(30, generator=make_gen(1))
    alone = torch.cat(
        [m(x[10 * s : 10 * (s + 1)], t[10 * s : 10 * (s + 1)]) for s, m in enumerate(models)]
    )
    torch.testing.assert_close(ens(x, t), alone)
    cfg = dataclasses.replace(CONFIG, steps=60)
    solo = [
        train(
            copy.deepcopy(models[s]),
            FlowMatchingLoss(),
            p.sample,
            dataclasses.replace(cfg, seed=SEEDS[s]),
        )
        for s, p in enumerate(pools())
    ]
    together = train_ensemble(
        [copy.deepcopy(m) for m in models],
        FlowMatchingLoss(),
        [p.sample for p in pools()],
        cfg,
        SEEDS,
    )
    for a, b in zip(solo, together, strict=True):
        torch.testing.assert_close(
            torch.tensor(b.losses), torch.tensor(a.losses), rtol=1e-4, atol=1e-6
        )
        assert_same_state(a.raw_model, b.raw_model, rtol=1e-4, atol=1e-5)
        assert torch.equal(b.raw_model.scale, a.raw_model.scale)


def test_mlp_ensembles_use_batched_matmuls():
    assert EnsembleVelocity(mlps()).vectorised_by == "batched-matmul"
    branched = [branched_from_teacher(m, 2) for m in mlps()]
    assert EnsembleVelocity(branched).vectorised_by == "batched-matmul"


def test_train_and_eval_modes_reach_the_wrapped_architecture():
    ens = EnsembleVelocity([Scaled(s) for s in range(2)])
    assert ens.eval() is ens and not ens.template.training
    ens.train()
    assert ens.training and ens.template.training
