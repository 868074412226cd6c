"""Exponential moving average of model weights: ``theta_ema <- d theta_ema + (1 - d) theta``."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of a model whose weights follow ``theta_ema <- d theta_ema + (1 - d) theta``
    after every ``update`` (``d = decay``); buffers are copied as they are."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step: ``theta_ema <- theta_ema + (1 - d) (theta - theta_ema)``, buffers copied."""
        for ema_param, param in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_param.lerp_(param.detach(), 1.0 - self.decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged model's state dict (for checkpoints)."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the averaged weights from ``state_dict()`` (resume)."""
        self.model.load_state_dict(state)
