"""U-Net velocity field: shapes, presets, a backward pass."""

from __future__ import annotations

import pytest
import torch

from bezkit.models.unet import SelfAttention, UNetVelocity, count_parameters, unet_config


def _perturb(model: torch.nn.Module, scale: float = 0.05) -> None:
    """Move every parameter off its initial value (the zero-initialised output convolutions
    make a fresh model ignore t)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def test_tiny_shapes_and_size() -> None:
    torch.manual_seed(0)
    model = UNetVelocity(**unet_config("tiny"))
    assert count_parameters(model) == 456_353 < 500_000  # the number in the docstring
    x, t = torch.randn(5, 1, 8, 8), torch.rand(5)
    assert model(x, t).shape == (5, 1, 8, 8)
    assert model(x, 0.3).shape == (5, 1, 8, 8)  # a float t is broadcast to (n,)


def test_cifar_preset_size_and_attention_layout() -> None:
    torch.manual_seed(0)
    model = UNetVelocity(**unet_config("cifar10"))
    n_params = count_parameters(model)
    assert n_params == 50_697_219  # the number in the docstring
    assert 35e6 <= n_params <= 60e6
    # attention at 16x16 only: 3 encoder blocks + 4 decoder blocks at level 1, plus the middle
    assert sum(isinstance(m, SelfAttention) for m in model.modules()) == 3 + 4 + 1
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32), torch.rand(1)).shape == (1, 3, 32, 32)


def test_32x32_with_branch_channels_and_backward() -> None:
    """B-DENSE-style ``out_channels = K * C`` on 32x32 inputs; every parameter gets a finite
    gradient and, once off the identity init, a nonzero one."""
    torch.manual_seed(0)
    k = 3
    model = UNetVelocity(**unet_config(
        "cifar10", base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1,
        attention_resolutions=(16,), dropout=0.0, out_channels=3 * k,
    ))  # fmt: skip
    _perturb(model)
    x, t = torch.randn(4, 3, 32, 32), torch.rand(4)
    out = model(x, t)
    assert out.shape == (4, 3 * k, 32, 32)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_fresh_model_gradients_reach_output_layers() -> None:
    model = UNetVelocity(**unet_config("tiny"))
    model(torch.randn(8, 1, 8, 8), torch.rand(8)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.conv_out.weight.grad.abs().sum() > 0


def test_depends_on_time_and_not_on_other_samples() -> None:
    torch.manual_seed(0)
    model = UNetVelocity(**unet_config("tiny")).eval()
    _perturb(model)
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        a = model(x, torch.zeros(6))
        b = model(x, torch.ones(6))
        assert (a - b).abs().max() > 1e-3
        # GroupNorm, not BatchNorm: sample i's output ignores the rest of the batch
        torch.testing.assert_close(model(x[:2], torch.zeros(2)), a[:2], rtol=1e-5, atol=1e-5)


def test_one_training_step_reduces_loss() -> None:
    torch.manual_seed(0)
    model = UNetVelocity(**unet_config("tiny"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, t = torch.randn(32, 1, 8, 8), torch.rand(32)
    target = torch.randn(32, 1, 8, 8)
    losses = []
    for _ in range(5):
        loss = (model(x, t) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_clear_errors() -> None:
    model = UNetVelocity(**unet_config("tiny"))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 1, 16, 16), torch.rand(2))
    with pytest.raises(ValueError, match="t must have shape"):
        model(torch.randn(2, 1, 8, 8), torch.rand(3))
    with pytest.raises(ValueError, match="divisible"):
        UNetVelocity(**unet_config("tiny", image_size=7))
    with pytest.raises(ValueError, match="attention_resolutions"):
        UNetVelocity(**unet_config("tiny", attention_resolutions=(2,)))
    with pytest.raises(ValueError, match="unknown U-Net preset"):
        unet_config("imagenet")
    with pytest.raises(TypeError, match="unknown U-Net argument"):
        unet_config("tiny", widht=3)


def test_config_rebuilds_the_model_through_the_factory() -> None:
    from bezkit.models.factory import build_model, model_spec

    model = UNetVelocity(**unet_config("tiny", out_channels=2))
    spec = model_spec(model)
    assert spec["class"] == "UNetVelocity"
    rebuilt = build_model(spec)
    assert isinstance(rebuilt, UNetVelocity) and rebuilt.config() == model.config()
    assert count_parameters(rebuilt) == count_parameters(model)
