"""Velocity models: the MLP, the time embedding, the B-DENSE branched head and the model specs."""

from __future__ import annotations

import json

import pytest
import torch

from bezkit.models import BranchedVelocity, MLPVelocity, SinusoidalTimeEmbedding, branch_times
from bezkit.models.factory import build_model, model_spec

pytestmark = pytest.mark.usefixtures("single_thread")


def mlp(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MLPVelocity(**{"hidden": 32, "depth": 2, "time_dim": 16, **kwargs})


def inputs(gen, n=7, d=2):
    return torch.randn(n, d, generator=gen), torch.rand(n, generator=gen)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_mlp_output_shape(d, gen):
    model = mlp(dim=d)
    x, t = inputs(gen, d=d)
    assert model(x, t).shape == (7, d)
    wide = mlp(dim=d, out_dim=3 * d)
    assert wide(x, t).shape == (7, 3 * d)


def test_mlp_depends_on_x_and_t(gen):
    model = mlp()
    x, t = inputs(gen)
    v = model(x, t)
    assert not torch.allclose(v, model(x + 1.0, t))
    assert not torch.allclose(v, model(x, 1.0 - t))
    # rows are independent: evaluating a subset gives the same rows
    torch.testing.assert_close(model(x[:3], t[:3]), v[:3])


def test_mlp_bad_shapes(gen):
    model = mlp()
    x, t = inputs(gen)
    with pytest.raises(ValueError, match=r"expects x of shape \(n, 2\), got \(7, 3\)"):
        model(torch.zeros(7, 3), t)
    with pytest.raises(ValueError, match=r"expects x of shape"):
        model(torch.zeros(7, 2, 1), t)
    with pytest.raises(ValueError, match=r"t must have shape \(7,\), got \(7, 1\)"):
        model(x, t[:, None])
    with pytest.raises(ValueError, match="dim, hidden, depth >= 1"):
        MLPVelocity(0)


def test_time_embedding_formula(gen):
    emb = SinusoidalTimeEmbedding(8, min_freq=1.0, max_freq=1000.0)
    t = torch.rand(5, generator=gen)
    freqs = torch.tensor([1000.0 ** (k / 3) for k in range(4)], dtype=torch.float64)
    ang = t.double()[:, None] * freqs
    expected = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).float()
    # angles up to 1000 rad in float32: absolute resolution about 1e-4
    torch.testing.assert_close(emb(t), expected, rtol=0, atol=3e-4)
    torch.testing.assert_close(emb(torch.zeros(2))[:, :4], torch.zeros(2, 4))
    torch.testing.assert_close(emb(torch.zeros(2))[:, 4:], torch.ones(2, 4))
    for bad in (3, 0):
        with pytest.raises(ValueError, match="even int >= 2"):
            SinusoidalTimeEmbedding(bad)


def branched(k=3, seed=0, times=None):
    return BranchedVelocity(mlp(seed, out_dim=2 * k), k, times=times)


def test_branch_times():
    assert branch_times(4) == (0.25, 0.5, 0.75, 1.0)
    with pytest.raises(ValueError, match="K must be an int >= 1"):
        branch_times(0)


def test_branches_shape_and_displacement_form(gen):
    model = branched(3)
    x, t = inputs(gen)
    t = 0.3 * t  # below the first branch time
    u = model.velocities(x, t)
    assert u.shape == (7, 3, 2)
    b = model.branches(x, t)
    assert b.shape == (7, 3, 2)
    for j, tj in enumerate(model.times):
        torch.testing.assert_close(b[:, j], x + (tj - t)[:, None] * u[:, j])
    # the network's output blocks are the branch velocities, in order
    torch.testing.assert_close(u.reshape(7, 6), model.net(x, t))


def test_forward_is_last_branch_velocity_and_one_euler_step_reads_branch_k(gen):
    model = branched(4)
    x, _ = inputs(gen)
    t0 = torch.zeros(7)
    torch.testing.assert_close(model(x, t0), model.velocities(x, t0)[:, -1])
    euler = x + 1.0 * model(x, t0)
    torch.testing.assert_close(euler, model.branches(x, t0)[:, -1])
    torch.testing.assert_close(model.sample(x, steps=1), model.branches(x, t0)[:, -1])


def test_few_step_sampling_hops_through_branch_outputs(gen):
    model = branched(4)
    x, _ = inputs(gen)
    # steps = 2 with K = 4: x -> branch_2(x, 0) (t = 0.5) -> branch_4(., 0.5) (t = 1)
    mid = model.branches(x, torch.zeros(7))[:, 1]
    expected = model.branches(mid, torch.full((7,), 0.5))[:, 3]
    torch.testing.assert_close(model.sample(x, steps=2), expected)
    with pytest.raises(ValueError, match="steps must divide the number of branches 4"):
        model.sample(x, steps=3)


def test_single_branch_is_the_wrapped_mlp(gen):
    x, t = inputs(gen)
    plain = mlp(seed=5)
    one = BranchedVelocity(mlp(seed=5), 1)
    torch.testing.assert_close(one(x, t), plain(x, t), rtol=0, atol=0)
    torch.testing.assert_close(one.branches(x, t)[:, 0], x + (1 - t)[:, None] * plain(x, t))


def test_branched_on_image_shaped_channels(gen):
    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 1)

        def forward(self, x, t):
            return self.conv(x) * (1 + t)[:, None, None, None]

    model = BranchedVelocity(Conv(), 2)
    x = torch.randn(4, 3, 5, 5, generator=gen)
    t = torch.zeros(4)
    assert model.branches(x, t).shape == (4, 2, 3, 5, 5)
    torch.testing.assert_close(model(x, t), model.net(x, t)[:, 3:])


def test_branched_bad_inputs(gen):
    with pytest.raises(ValueError, match="3 branches need 3 times"):
        BranchedVelocity(mlp(out_dim=6), 3, times=(0.5, 1.0))
    with pytest.raises(ValueError, match="must increase in"):
        BranchedVelocity(mlp(out_dim=4), 2, times=(0.7, 0.5))
    with pytest.raises(ValueError, match="end at 1"):
        BranchedVelocity(mlp(out_dim=4), 2, times=(0.2, 0.9))
    wrong = BranchedVelocity(mlp(out_dim=4), 3)
    x, t = inputs(gen)
    with pytest.raises(ValueError, match="must output 3 x 2 channels, got 4"):
        wrong(x, t)


@pytest.mark.parametrize("kind", ["mlp", "branched"])
def test_model_spec_round_trip(kind, gen):
    model = mlp(3, dim=3, out_dim=3) if kind == "mlp" else branched(2, times=(0.3, 1.0))
    spec = model_spec(model)
    assert spec["class"] == ("MLPVelocity" if kind == "mlp" else "BranchedVelocity")
    rebuilt = build_model(spec)
    assert model_spec(rebuilt) == spec
    rebuilt.load_state_dict(model.state_dict())
    x, t = inputs(gen, d=3 if kind == "mlp" else 2)
    torch.testing.assert_close(rebuilt(x, t), model(x, t), rtol=0, atol=0)
    if kind == "branched":
        assert rebuilt.times == (0.3, 1.0)
    # the spec is plain JSON
    assert json.loads(json.dumps(spec)) == spec


def test_model_spec_errors():
    with pytest.raises(TypeError, match="cannot describe model of class Linear"):
        model_spec(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"unknown model class 'os\.system'"):
        build_model({"class": "os.system", "config": {}})


def test_mlp_parameter_count():
    model = MLPVelocity(2, hidden=10, depth=2, time_dim=4)
    # (2 + 4) -> 10 -> 10 -> 2, weights and biases
    expected = (6 * 10 + 10) + (10 * 10 + 10) + (10 * 2 + 2)
    assert sum(p.numel() for p in model.parameters()) == expected
