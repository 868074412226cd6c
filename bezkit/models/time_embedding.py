"""Sinusoidal time features: ``t -> [sin(w_k t), cos(w_k t)]_k`` with log-spaced frequencies.

``w_k = min_freq * (max_freq / min_freq)^(k / (m - 1))`` for ``k = 0 .. m-1``, ``m = dim / 2``.
For ``t`` in [0, 1] the frequencies run from 1 to 1000 by default, so both slow and fast changes in
time are easy for the network to represent.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinusoidalTimeEmbedding"]


class SinusoidalTimeEmbedding(nn.Module):
    """``t -> [sin(w_0 t), ..., sin(w_{m-1} t), cos(w_0 t), ..., cos(w_{m-1} t)]``, ``m = dim / 2``.

    ``w_k`` log-spaced from ``min_freq`` to ``max_freq`` (see the module docstring); ``dim`` even.
    """

    freqs: Tensor

    def __init__(self, dim: int = 64, *, min_freq: float = 1.0, max_freq: float = 1000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding dim must be an even int >= 2, got {dim}")
        m = dim // 2
        freqs = torch.exp(torch.linspace(math.log(min_freq), math.log(max_freq), m))
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        """Features ``(n, dim)`` of the times ``t`` of shape ``(n,)``, computed in float32."""
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
