"""Pick the compute device: CUDA if present, else Apple's MPS, else the CPU."""

from __future__ import annotations

import torch

__all__ = ["choose_device"]


def choose_device(requested: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda / mps / cpu, in that order; anything else is checked and returned."""
    if isinstance(requested, torch.device):
        return requested
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return dev
