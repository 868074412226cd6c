"""A DDPM++-like U-Net velocity field ``model(x, t)`` for images.

The network (Ho et al. 2020; Song et al. 2021, "DDPM++"), read top to bottom:

1. **Time embedding.** ``t`` in [0, 1] of shape ``(n,)`` -> sinusoidal features
   (``bezkit.models.time_embedding``) -> ``Linear, SiLU, Linear`` -> ``emb`` of width
   ``4 * base_channels``.
2. **Encoder.** A 3x3 convolution, then for each level ``i`` (resolution ``image_size / 2^i``,
   ``base_channels * channel_mults[i]`` channels) ``num_res_blocks`` residual blocks, each followed
   by self-attention if the resolution is in ``attention_resolutions``; a stride-2 convolution
   halves the resolution between levels. Every block's output is kept as a skip connection.
3. **Middle.** Residual block, self-attention, residual block at the lowest resolution.
4. **Decoder.** The mirror image with ``num_res_blocks + 1`` blocks per level, each taking the
   concatenation of the current features and one skip connection; nearest-neighbour upsampling and
   a 3x3 convolution double the resolution between levels.
5. **Output.** GroupNorm, SiLU, 3x3 convolution to ``out_channels``.

A residual block with input ``h`` and time embedding ``emb``:
``a = conv(SiLU(GN(h)))``, ``[s, b] = Linear(SiLU(emb))``,
``a = conv(dropout(SiLU(GN(a) * (1 + s) + b)))`` (the "scale-shift" FiLM of DDPM++/ADM), and the
output is ``(skip(h) + a) / sqrt(2)`` where ``skip`` is the identity or a 1x1 convolution when the
width changes. Self-attention is ``h + proj(softmax(q k^T / sqrt(d)) v)`` over the ``H * W``
positions, with ``q, k, v`` 1x1 projections of ``GN(h)``. The last convolution of every residual
branch and attention block starts at zero, so each block starts as the identity (DDPM++ init).

``out_channels`` may differ from ``in_channels``: B-DENSE uses ``K * in_channels`` output channels,
one group per branch.

Presets (parameter counts measured with ``count_parameters``):

- ``unet_config("tiny")``: 8x8 one-channel digits on a CPU, 32 base channels, mults (1, 1),
  two blocks per level, attention at 4x4: **456,353 parameters**.
- ``unet_config("cifar10")``: 32x32 RGB, 128 base channels, mults (1, 2, 2, 2), 3 blocks per level,
  attention at 16x16, dropout 0.1: **50,697,219 parameters**. With ``num_res_blocks=2`` (Ho et
  al.'s DDPM layout) it has 38,307,203; with 4 (the DDPM++ of the rectified-flow papers, about 62M
  there) 63,087,235.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bezkit.models.time_embedding import SinusoidalTimeEmbedding

__all__ = [
    "UNET_PRESETS",
    "ResidualBlock",
    "SelfAttention",
    "UNetVelocity",
    "count_parameters",
    "unet_config",
]

UNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "in_channels": 1,
        "base_channels": 32,
        "channel_mults": (1, 1),
        "num_res_blocks": 2,
        "attention_resolutions": (4,),
        "dropout": 0.0,
        "image_size": 8,
    },
    "cifar10": {
        "in_channels": 3,
        "base_channels": 128,
        "channel_mults": (1, 2, 2, 2),
        "num_res_blocks": 3,
        "attention_resolutions": (16,),
        "dropout": 0.1,
        "image_size": 32,
    },
}

_UNET_ARGS: tuple[str, ...] = (
    "in_channels",
    "base_channels",
    "channel_mults",
    "num_res_blocks",
    "attention_resolutions",
    "dropout",
    "image_size",
    "out_channels",
    "num_heads",
)


def unet_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of a preset, with ``overrides`` applied:
    ``UNetVelocity(**unet_config("tiny", out_channels=4))``."""
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown U-Net preset {name!r}; known: {', '.join(UNET_PRESETS)}")
    unknown = set(overrides) - set(_UNET_ARGS)
    if unknown:
        raise TypeError(f"unknown U-Net argument(s) {sorted(unknown)}; known: {_UNET_ARGS}")
    return {**UNET_PRESETS[name], **overrides}


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (fewer for narrow layers: at least 4 channels per group)."""
    groups = max(g for g in range(1, min(32, max(channels // 4, 1)) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResidualBlock(nn.Module):
    """``(skip(h) + conv(drop(SiLU(FiLM(GN(conv(SiLU(GN(h)))), emb))))) / sqrt(2)``."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)  # -> scale and shift
        self.norm2 = _group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        """``h`` ``(n, in_ch, H, W)`` and ``emb`` ``(n, emb_dim)`` -> ``(n, out_ch, H, W)``."""
        a = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        a = self.norm2(a) * (1 + scale) + shift
        a = self.conv2(self.dropout(F.silu(a)))
        return (self.skip(h) + a) / math.sqrt(2.0)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions: ``h + proj(attn(GN(h)))``."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        """``h + proj(softmax(q^T k / sqrt(d)) v)`` per head, ``q, k, v = qkv(GN(h))``."""
        n, c, height, width = h.shape
        q, k, v = (
            self.qkv(self.norm(h)).reshape(n, 3, self.num_heads, c // self.num_heads, -1).unbind(1)
        )
        # (n, heads, d, HW) -> (n, heads, HW, d) for scaled_dot_product_attention
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        out = out.transpose(-1, -2).reshape(n, c, height, width)
        return h + self.proj(out)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        """``(n, C, S, S)`` -> ``(n, C, S/2, S/2)``."""
        return self.conv(h)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        """``(n, C, S, S)`` -> ``(n, C, 2S, 2S)``."""
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """The residual blocks (each with optional attention) of one resolution level."""

    blocks: nn.ModuleList
    attention: nn.ModuleList

    def __init__(self, blocks: list[ResidualBlock], attention: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attention = nn.ModuleList(attention)


def _levels(modules: nn.ModuleList) -> list[_Level]:
    """The entries of a ``ModuleList`` of levels, typed as such."""
    return [cast(_Level, level) for level in modules]


def _level_resolutions(
    *,
    channel_mults: tuple[int, ...],
    num_res_blocks: int,
    attention_resolutions: tuple[int, ...],
    dropout: float,
    image_size: int,
) -> list[int]:
    """Check the U-Net's arguments and return each level's resolution ``image_size / 2^i``."""
    if not channel_mults or min(channel_mults) < 1:
        raise ValueError(f"channel_mults must be positive ints, got {channel_mults}")
    if num_res_blocks < 1:
        raise ValueError(f"num_res_blocks must be >= 1, got {num_res_blocks}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    factor = 2 ** (len(channel_mults) - 1)
    if image_size < factor or image_size % factor:
        raise ValueError(f"image_size {image_size} must be divisible by 2^(levels - 1) = {factor}")
    resolutions = [image_size // 2**i for i in range(len(channel_mults))]
    bad = [r for r in attention_resolutions if r not in resolutions]
    if bad:
        raise ValueError(f"attention_resolutions {bad} are not among the levels {resolutions}")
    return resolutions


class UNetVelocity(nn.Module):
    """DDPM++-like U-Net velocity field, ``model(x, t)`` with ``x`` ``(n, C, S, S)`` and ``t``
    ``(n,)`` in [0, 1], returning ``(n, out_channels, S, S)``. See the module docstring.

    Args:
        in_channels: image channels ``C``.
        base_channels: width of the first level.
        channel_mults: width multiplier of each level; ``len(channel_mults) - 1`` downsamplings.
        num_res_blocks: residual blocks per level in the encoder (decoder: one more).
        attention_resolutions: spatial sizes (e.g. ``(16,)``) at which self-attention follows each
            residual block. The middle always has one attention layer.
        dropout: dropout rate inside residual blocks.
        image_size: the side ``S`` of the square input; must be divisible by
            ``2^(len(channel_mults) - 1)``.
        out_channels: output channels (default ``in_channels``; ``K * in_channels`` for B-DENSE).
        num_heads: attention heads.
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        channel_mults: Sequence[int],
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float,
        image_size: int,
        out_channels: int | None = None,
        *,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        channel_mults = tuple(int(m) for m in channel_mults)
        attention_resolutions = tuple(int(r) for r in attention_resolutions)
        resolutions = _level_resolutions(
            channel_mults=channel_mults,
            num_res_blocks=num_res_blocks,
            attention_resolutions=attention_resolutions,
            dropout=dropout,
            image_size=image_size,
        )
        out_channels = in_channels if out_channels is None else out_channels
        self._config: dict[str, Any] = {
            "in_channels": in_channels,
            "base_channels": base_channels,
            "channel_mults": list(channel_mults),
            "num_res_blocks": num_res_blocks,
            "attention_resolutions": list(attention_resolutions),
            "dropout": dropout,
            "image_size": image_size,
            "out_channels": out_channels,
            "num_heads": num_heads,
        }
        self.in_channels, self.out_channels, self.image_size = in_channels, out_channels, image_size

        emb_dim = 4 * base_channels
        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(base_channels),
            nn.Linear(base_channels, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        def attention_or_identity(resolution: int, channels: int) -> nn.Module:
            if resolution in attention_resolutions:
                return SelfAttention(channels, num_heads)
            return nn.Identity()

        # encoder: remember the width of every skip connection
        skip_widths = [base_channels]
        width = base_channels
        self.down_levels = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for level, mult in enumerate(channel_mults):
            blocks, attention = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(width, base_channels * mult, emb_dim, dropout))
                width = base_channels * mult
                attention.append(attention_or_identity(resolutions[level], width))
                skip_widths.append(width)
            self.down_levels.append(_Level(blocks, attention))
            if level < len(channel_mults) - 1:
                self.downsamples.append(Downsample(width))
                skip_widths.append(width)

        self.mid_block1 = ResidualBlock(width, width, emb_dim, dropout)
        self.mid_attention = SelfAttention(width, num_heads)
        self.mid_block2 = ResidualBlock(width, width, emb_dim, dropout)

        # decoder: each block consumes one skip connection, in reverse order
        self.up_levels = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(channel_mults))):
            blocks, attention = [], []
            for _ in range(num_res_blocks + 1):
                out_width = base_channels * channel_mults[level]
                blocks.append(ResidualBlock(width + skip_widths.pop(), out_width, emb_dim, dropout))
                width = out_width
                attention.append(attention_or_identity(resolutions[level], width))
            self.up_levels.append(_Level(blocks, attention))
            if level > 0:
                self.upsamples.append(Upsample(width))

        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able), stored in checkpoints to rebuild the model:
        ``UNetVelocity(**model.config())``."""
        return dict(self._config)

    def _check_inputs(self, x: Tensor, t: Tensor | float) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"UNetVelocity expects x of shape (n, *{expected}), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating tensor, got {x.dtype}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        return t

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The velocity ``v(x, t)``: ``x`` ``(n, C, S, S)``, ``t`` ``(n,)`` (or a float for all) in
        [0, 1] -> ``(n, out_channels, S, S)``."""
        t = self._check_inputs(x, t)
        emb = self.time_embedding(t)

        h = self.conv_in(x)
        skips = [h]
        for level, down in enumerate(_levels(self.down_levels)):
            for block, attention in zip(down.blocks, down.attention, strict=True):
                h = attention(block(h, emb))
                skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
                skips.append(h)

        h = self.mid_block2(self.mid_attention(self.mid_block1(h, emb)), emb)

        for level, up in enumerate(_levels(self.up_levels)):
            for block, attention in zip(up.blocks, up.attention, strict=True):
                h = attention(block(torch.cat([h, skips.pop()], dim=1), emb))
            if level < len(self.upsamples):
                h = self.upsamples[level](h)

        return self.conv_out(F.silu(self.norm_out(h)))
