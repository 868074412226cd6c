"""Conversions shared by the figures and the geometry helpers: anything array-like to numpy.

The figures (:mod:`bezkit.plot`, :mod:`bezkit.widgets`) and the small geometry helpers they draw
(:mod:`bezkit.paths.geometry`, :func:`bezkit.metrics.segment_crossings`) accept torch
tensors, numpy arrays or nested lists; these two functions turn them into float64 numpy arrays and
name the argument when the shape is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_points2d", "subsample", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or nested list."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def as_points2d(x: Any, name: str) -> np.ndarray:
    """``x`` as float64 2D points of shape ``(n, 2)``; a ``ValueError`` naming ``name`` if not."""
    arr = to_numpy(x)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be 2D points of shape (n, 2), got {arr.shape}")
    return arr


def subsample(n: int, m: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(m, n)`` of ``n`` items, drawn by a seeded generator (all if m is
    None)."""
    if m is None or m >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=m, replace=False))
