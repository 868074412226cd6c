"""The training loop: determinism, prefetching, learning, resuming, EMA and the lr schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from bezkit.couplings import IndependentCoupling, Pairs
from bezkit.data import get_sampler
from bezkit.models import MLPVelocity
from bezkit.models.unet import UNetVelocity
from bezkit.paths import BezierPath, distill_times
from bezkit.training import (
    EMA,
    FlowMatchingLoss,
    TrainConfig,
    choose_device,
    generator_for,
    train,
)
from bezkit.training.trainer import lr_factor

pytestmark = pytest.mark.usefixtures("single_thread")

SRC, TGT = get_sampler("8gaussians"), get_sampler("moons")
COUPLING = IndependentCoupling(SRC, TGT)


def mlp(seed=0):
    torch.manual_seed(seed)
    return MLPVelocity(2, hidden=32, depth=2, time_dim=16)


def cfg(**kwargs) -> TrainConfig:
    base = dict(steps=20, batch_size=64, lr=2e-3, seed=1, device="cpu", progress=False)
    return TrainConfig(**{**base, **kwargs})


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def run(config, *, seed=0, **kwargs):
    return train(mlp(seed), FlowMatchingLoss(), COUPLING.sample, config, **kwargs)


def test_same_seed_gives_identical_losses_and_weights():
    a, b = run(cfg()), run(cfg())
    assert len(a.losses) == 20
    assert a.losses == b.losses
    assert torch.equal(params(a.model), params(b.model))
    c = run(cfg(seed=2))
    assert c.losses != a.losses  # the seed does drive the batches and the times


def test_prefetch_gives_the_same_losses():
    plain = run(cfg())
    ahead = run(cfg(prefetch=3))
    assert ahead.losses == plain.losses
    assert torch.equal(params(ahead.model), params(plain.model))


def test_prefetch_passes_on_data_errors():
    def broken(n, generator):
        raise RuntimeError("data source failed")

    with pytest.raises(RuntimeError, match="data source failed"):
        train(mlp(), FlowMatchingLoss(), broken, cfg(prefetch=2))


def test_short_2d_run_reduces_the_loss():
    loss_fn = FlowMatchingLoss()

    def held_out(model):
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(loss_fn(model, COUPLING.sample(4096, g), g))

    model = mlp()
    before = held_out(model)
    res = train(model, loss_fn, COUPLING.sample, cfg(steps=300, batch_size=256, lr=3e-3))
    after = held_out(res.model)
    assert after < 0.8 * before
    first, last = sum(res.losses[:20]) / 20, sum(res.losses[-50:]) / 50
    assert last < first
    assert not res.model.training  # returned in eval mode


def crash_at(step: int):
    """A batch source that fails at ``step`` (prefetch = 0 calls it once per step, in order)."""
    calls = []

    def sample(n, generator):
        if len(calls) == step:
            raise KeyboardInterrupt("simulated crash")
        calls.append(1)
        return COUPLING.sample(n, generator)

    return sample


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_from_a_mid_checkpoint_matches_an_uninterrupted_run(tmp_path, ema_decay):
    steps, every, crash = 24, 5, 13  # the last checkpoint before the crash is at step 10
    full = run(cfg(steps=steps, warmup_steps=4, ema_decay=ema_decay, weight_decay=0.01))
    ckpt = str(tmp_path / "run")
    config = cfg(
        steps=steps,
        warmup_steps=4,
        ema_decay=ema_decay,
        weight_decay=0.01,
        checkpoint_path=ckpt,
        checkpoint_every=every,
    )
    with pytest.raises(KeyboardInterrupt):
        train(mlp(), FlowMatchingLoss(), crash_at(crash), config)
    # resume into a differently initialised model: everything must come from the checkpoint
    resumed = train(mlp(seed=99), FlowMatchingLoss(), COUPLING.sample, config, resume_from=ckpt)
    assert len(resumed.losses) == steps
    torch.testing.assert_close(
        torch.tensor(resumed.losses), torch.tensor(full.losses), rtol=1e-6, atol=1e-7
    )
    torch.testing.assert_close(
        params(resumed.raw_model), params(full.raw_model), rtol=1e-6, atol=1e-7
    )
    if ema_decay:
        torch.testing.assert_close(
            params(resumed.ema_model), params(full.ema_model), rtol=1e-6, atol=1e-7
        )
        assert not torch.equal(params(full.ema_model), params(full.raw_model))


class Scalar(nn.Module):
    """``v = w`` everywhere: one parameter, for checking optimizer and EMA arithmetic."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value))

    def forward(self, x, t):
        return self.w.expand_as(x)


def linear_loss(model, pairs, generator):
    # d loss / d w = 1, constant: Adam's normalised step m_hat / sqrt(v_hat) is exactly 1, so each
    # step moves w by -lr_k (up to eps), revealing the learning rate actually used at step k
    return model(pairs.x0, torch.zeros(len(pairs)))[0, 0] * 1.0  # a copy, not a view of w


def constant_batch(n, generator):
    return Pairs(torch.zeros(n, 1), torch.zeros(n, 1))


@pytest.mark.parametrize(("schedule", "warmup"), [("cosine", 0), ("cosine", 4), ("constant", 3)])
def test_lr_schedule_values(schedule, warmup):
    config = cfg(steps=12, lr=0.1, warmup_steps=warmup, schedule=schedule, grad_clip=None)
    factor = lr_factor(config)

    def expected(k):
        if k < warmup:
            return (k + 1) / warmup
        if schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (k - warmup) / (12 - warmup)))

    want = [expected(k) for k in range(12)]
    assert [factor(k) for k in range(12)] == pytest.approx(want, rel=1e-12)
    if schedule == "cosine":
        assert factor(12) == pytest.approx(0.0, abs=1e-12)  # decays to 0 at the end
        post = want[warmup:]
        assert all(a >= b for a, b in itertools.pairwise(post))
    # the optimizer really uses these rates: w moves by -lr_k at step k
    res = train(Scalar(), linear_loss, constant_batch, config)
    ws = torch.tensor([*res.losses, float(res.model.w.detach())])  # w_k is the loss at step k
    moved = ws[:-1] - ws[1:]
    torch.testing.assert_close(moved, 0.1 * torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_ema_decay_math():
    model = Scalar(1.0)
    ema = EMA(model, decay=0.9)
    values = [2.0, -1.0, 0.5, 4.0]
    expected = 1.0
    for v in values:
        with torch.no_grad():
            model.w.fill_(v)
        ema.update(model)
        expected = 0.9 * expected + 0.1 * v
        assert float(ema.model.w) == pytest.approx(expected, rel=1e-6)
    # closed form: d^k e_0 + (1 - d) sum_i d^(k-i) p_i
    k = len(values)
    closed = 0.9**k * 1.0 + 0.1 * sum(0.9 ** (k - 1 - i) * v for i, v in enumerate(values))
    assert float(ema.model.w) == pytest.approx(closed, rel=1e-6)
    assert not ema.model.w.requires_grad
    assert float(model.w.detach()) == 4.0  # the tracked model is untouched
    with pytest.raises(ValueError, match=r"decay must lie in \(0, 1\)"):
        EMA(model, decay=1.0)


def test_trainer_ema_follows_the_weights():
    config = cfg(steps=6, lr=0.1, ema_decay=0.5, schedule="constant", grad_clip=None)
    res = train(Scalar(), linear_loss, constant_batch, config)
    # w_k after step k is -(k+1) * 0.1 (see linear_loss); the EMA starts at w_0 = 0
    ws = [-(k + 1) * 0.1 for k in range(6)]
    e = 0.0
    for w in ws:
        e = 0.5 * e + 0.5 * w
    assert float(res.raw_model.w.detach()) == pytest.approx(ws[-1], rel=1e-5)
    assert float(res.ema_model.w) == pytest.approx(e, rel=1e-5)
    assert res.model is res.ema_model  # the model to sample with is the EMA one


def test_flow_matching_loss_formula(gen):
    # linear path, tangent target: E ||v(X_t, t) - (X1 - X0)||^2 with t from the loss generator
    model = mlp()
    pairs = COUPLING.sample(32, gen)
    loss = FlowMatchingLoss()(model, pairs, torch.Generator().manual_seed(4))
    t = torch.rand(32, generator=torch.Generator().manual_seed(4))
    xt = (1 - t[:, None]) * pairs.x0 + t[:, None] * pairs.x1
    expected = (model(xt, t) - (pairs.x1 - pairs.x0)).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="unknown target 'noise'"):
        FlowMatchingLoss(target="noise")


def test_flow_matching_loss_secant_target_on_the_grid(gen):
    """``target="secant"``: ``E_i ||v(B(t_i), t_i) - N (B(t_{i+1}) - B(t_i))||^2`` on the grid."""
    model = mlp()
    base = COUPLING.sample(32, gen)
    guide = torch.randn(32, 2, generator=gen)
    pairs = Pairs(base.x0, base.x1, (guide,))
    path, steps = BezierPath(2), 4
    loss = FlowMatchingLoss(
        path, target="secant", grid_steps=steps, time_sampler=distill_times(steps)
    )
    got = loss(model, pairs, torch.Generator().manual_seed(9))
    t = distill_times(steps)(32, torch.Generator().manual_seed(9))
    nxt = t + 1 / steps
    x_t = path.point(pairs.x0, pairs.x1, t, (guide,))
    want = steps * (path.point(pairs.x0, pairs.x1, nxt, (guide,)) - x_t)
    torch.testing.assert_close(got, (model(x_t, t) - want).pow(2).mean())
    assert "grid_steps=4" in repr(loss)
    with pytest.raises(ValueError, match="grid_steps=N"):
        FlowMatchingLoss(path, target="secant")
    with pytest.raises(ValueError, match="secant target only"):
        FlowMatchingLoss(path, target="endpoint", grid_steps=2)


def test_generator_for_streams_differ():
    a = torch.rand(4, generator=generator_for(0, 5, "data"))
    assert torch.equal(a, torch.rand(4, generator=generator_for(0, 5, "data")))
    assert not torch.equal(a, torch.rand(4, generator=generator_for(0, 5, "loss")))
    assert not torch.equal(a, torch.rand(4, generator=generator_for(0, 6, "data")))
    assert not torch.equal(a, torch.rand(4, generator=generator_for(1, 5, "data")))


def test_non_finite_loss_is_an_error():
    def nan_loss(model, pairs, generator):
        return model(pairs.x0, torch.zeros(len(pairs))).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="loss became nan at step 0"):
        train(Scalar(), nan_loss, constant_batch, cfg(steps=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"schedule": "linear"}, "unknown lr schedule 'linear'"),
        ({"warmup_steps": -1}, "must be >= 0"),
        ({"prefetch": -1}, "must be >= 0"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ],
)
def test_train_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    if torch.cuda.is_available():
        assert choose_device("auto").type == "cuda"
    else:
        assert choose_device("auto").type in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            choose_device("cuda")


def dropout_unet(seed=0):
    """A tiny U-Net with dropout 0.5: training draws its masks from the global torch RNG."""
    torch.manual_seed(seed)
    return UNetVelocity(
        1,
        8,
        (1,),
        num_res_blocks=1,
        attention_resolutions=(),
        dropout=0.5,
        image_size=8,
    )


def noise_images(n, generator):
    return Pairs(
        torch.randn(n, 1, 8, 8, generator=generator), torch.randn(n, 1, 8, 8, generator=generator)
    )


def test_resume_with_dropout_replays_the_same_dropout_masks(tmp_path):
    # step k's masks come from a (seed, k) stream, so a resumed run does not replay step 0's masks
    steps, calls = 4, []

    def crash_at_3(n, generator):
        if len(calls) == 3:  # the checkpoint after step 2 is the last one before the crash
            raise KeyboardInterrupt("simulated crash")
        calls.append(1)
        return noise_images(n, generator)

    base = dict(steps=steps, batch_size=4, lr=1e-2, seed=1, device="cpu", progress=False)
    full = train(dropout_unet(), FlowMatchingLoss(), noise_images, TrainConfig(**base))
    config = TrainConfig(**base, checkpoint_path=str(tmp_path / "run"), checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(dropout_unet(), FlowMatchingLoss(), crash_at_3, config)
    resumed = train(
        dropout_unet(seed=99),
        FlowMatchingLoss(),
        noise_images,
        config,
        resume_from=config.checkpoint_path,
    )
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses))
    torch.testing.assert_close(params(resumed.model), params(full.model), rtol=0, atol=0)


@pytest.mark.parametrize(("setting", "inside"), [("auto", 1), (None, 2), (3, 3)])
def test_cpu_threads_while_training_and_the_callers_setting_restored(setting, inside):
    """Issue 17: recipes called from Python trained small models on torch's default thread count
    (6x slower than the CLI's one thread); "auto" trains them on one thread and restores."""
    seen = []

    def loss_fn(model, pairs, generator):
        seen.append(torch.get_num_threads())
        return model(pairs.x0, torch.zeros(len(pairs.x0))).square().mean()

    def batch(n, generator):
        x = torch.randn(n, 2, generator=generator)
        return Pairs(x, x)

    torch.set_num_threads(2)  # the caller's setting (the suite's default is 1)
    config = TrainConfig(steps=2, batch_size=4, progress=False, cpu_threads=setting)
    train(MLPVelocity(2, hidden=8, depth=1), loss_fn, batch, config)
    assert seen == [inside, inside]
    assert torch.get_num_threads() == 2


def test_cpu_threads_must_be_auto_none_or_positive():
    for bad in (0, -1, True, "1", 1.5):
        with pytest.raises(ValueError, match="cpu_threads"):
            TrainConfig(cpu_threads=bad)
