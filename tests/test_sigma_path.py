"""sigma > 0: I-CFM / OT-CFM's Gaussian path around the line (bezkit.paths.gaussian).

sigma = 0 is today's loss and training bit for bit; with sigma > 0 the network's inputs have the
path's mean (1 - t) X0 + t X1 and variance sigma^2, the target is unchanged; curved paths and
other targets are refused."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bezkit.couplings import IndependentCoupling
from bezkit.couplings.pairs import Pairs
from bezkit.data import get_sampler
from bezkit.methods import FlowConfig, new_mlp, train_flow
from bezkit.paths import BezierPath
from bezkit.training import FlowMatchingLoss, TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")


class Recorder(nn.Module):
    """A zero velocity field that keeps the points and times it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.x: torch.Tensor | None = None
        self.t: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.x, self.t = x.detach().clone(), t.detach().clone()
        return torch.zeros_like(x)


def _pairs(n: int = 20_000) -> Pairs:
    g = torch.Generator().manual_seed(0)
    return Pairs(torch.randn(n, 2, generator=g), 3.0 + 0.5 * torch.randn(n, 2, generator=g))


def test_sigma_path_mean_and_variance_around_the_line():
    pairs, sigma = _pairs(), 0.3
    rec = Recorder()
    loss = FlowMatchingLoss(sigma=sigma)(rec, pairs, torch.Generator().manual_seed(1))
    assert rec.x is not None and rec.t is not None
    t = rec.t[:, None]
    noise = rec.x - ((1 - t) * pairs.x0 + t * pairs.x1)
    n = noise.shape[0]
    # given the pair, x_t - mean ~ N(0, sigma^2 I), whatever t
    assert noise.mean(0).abs().max() < 6 * sigma / math.sqrt(n)
    var = noise.var(0)
    assert (var - sigma**2).abs().max() < 6 * sigma**2 * math.sqrt(2 / n)
    assert abs(float(torch.corrcoef(torch.stack([noise[:, 0].abs(), rec.t]))[0, 1])) < 6 / n**0.5
    # the marginal over the pairs: mean t * 3, variance (1 - t)^2 + 0.25 t^2 + sigma^2 (t = 1/2 bin)
    mid = (rec.t - 0.5).abs() < 0.05
    xm = rec.x[mid]
    tm = rec.t[mid][:, None]
    expected_var = ((1 - tm) ** 2 + 0.25 * tm**2 + sigma**2).mean()
    assert abs(float(xm.var(0).mean() - expected_var)) < 6 * float(expected_var) * math.sqrt(
        2 / xm.shape[0]
    )
    # the target is the line's tangent X1 - X0: the loss of a zero field is E||X1 - X0||^2 / 2
    assert torch.isclose(loss, (pairs.x1 - pairs.x0).pow(2).mean())


def test_sigma_zero_is_todays_loss_bit_for_bit():
    pairs = _pairs(512)
    model = new_mlp(2, hidden=16, depth=2, seed=0)
    a = FlowMatchingLoss()(model, pairs, torch.Generator().manual_seed(5))
    b = FlowMatchingLoss(sigma=0.0)(model, pairs, torch.Generator().manual_seed(5))
    c = FlowMatchingLoss(sigma=0.1)(model, pairs, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sigma_zero_trains_the_same_weights():
    def run(flow: FlowConfig | None) -> list[torch.Tensor]:
        coupling = IndependentCoupling(get_sampler("gaussian"), get_sampler("moons"))
        model = new_mlp(2, hidden=16, depth=2, seed=0)
        cfg = TrainConfig(steps=5, batch_size=32, progress=False, device="cpu")
        train_flow(model, coupling, cfg, flow)
        return [p.detach().clone() for p in model.parameters()]

    today, zero = run(None), run(FlowConfig(sigma=0.0))
    assert all(torch.equal(a, b) for a, b in zip(today, zero, strict=True))
    noisy = run(FlowConfig(sigma=0.1))
    assert not all(torch.equal(a, b) for a, b in zip(today, noisy, strict=True))


def test_sigma_seed_blocks_draw_as_solo_calls():
    pairs = _pairs(64)
    model = new_mlp(2, hidden=16, depth=2, seed=0)
    loss = FlowMatchingLoss(sigma=0.2)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    blocks = loss.block_losses(model, pairs, gens)
    for s, seed in enumerate((3, 4)):
        half = Pairs(pairs.x0[32 * s : 32 * (s + 1)], pairs.x1[32 * s : 32 * (s + 1)])
        solo = loss(model, half, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(blocks[s], solo)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": -0.1}, "sigma must be a finite number >= 0"),
        ({"sigma": float("nan")}, "sigma must be a finite number >= 0"),
        ({"sigma": 0.1, "path": BezierPath(2)}, "linear path only"),
        ({"sigma": 0.1, "target": "endpoint"}, "tangent target"),
    ],
)
def test_bad_sigma_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlowConfig(**kwargs)
    path = kwargs.pop("path", None)
    with pytest.raises(ValueError, match=match):
        FlowMatchingLoss(path, **kwargs)


def test_bezier_path_with_sigma_zero_still_works():
    assert FlowConfig(path=BezierPath(2), sigma=0.0).sigma == 0.0
