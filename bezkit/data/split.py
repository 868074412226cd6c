"""Split a user's own point set into a training part and a held-out part.

The held-out part is the reference that evaluation compares against (METHODS.md section 6): it must
never be used for training. Rows with identical coordinates are kept together (all in one part), so
no point appears in both parts even when the file repeats a point. With ``n`` rows, the held-out
part gets ``round(held_out_fraction * n)`` rows (more only when a group of repeated rows straddles
the boundary); the groups are drawn in a random order fixed by ``seed``, and each part keeps the
rows in their original order.

Evaluation needs both parts to be real samples big enough to measure: the noise floor is the W2
between the training part and the held-out part, and every model is scored against the held-out
part. :func:`check_split_sizes` refuses a part with fewer than :data:`MIN_PART_POINTS` points and
warns below :data:`NOISY_PART_POINTS`.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import torch
from torch import Tensor

from bezkit.data.toy2d import check_points

__all__ = [
    "MIN_PART_POINTS",
    "NOISY_PART_POINTS",
    "PointSplit",
    "check_split_sizes",
    "split_points",
]

#: The fewest points a part may have: fewer cannot give a meaningful W2 (evaluation resamples them).
MIN_PART_POINTS = 32
#: Below this many points in a part the numbers are noisy: a warning.
NOISY_PART_POINTS = 512


class PointSplit(NamedTuple):
    """``(train, held_out)``: the two disjoint parts of a point set (unpacks as a tuple)."""

    train: Tensor
    held_out: Tensor


def split_points(points: Any, held_out_fraction: float, seed: int = 0) -> PointSplit:
    """Split ``points`` ``(n, *d)`` into ``(train, held_out)``, deterministically for ``seed``."""
    if isinstance(held_out_fraction, bool) or not isinstance(held_out_fraction, (int, float)):
        raise TypeError(f"held_out_fraction must be a number, got {held_out_fraction!r}")
    if not 0.0 < float(held_out_fraction) < 1.0:
        raise ValueError(f"held_out_fraction must lie strictly in (0, 1), got {held_out_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not isinstance(points, Tensor):
        points = torch.as_tensor(points)
    if not points.is_floating_point():  # integer coordinates are fine: compare them as floats
        points = points.double()
    x = check_points(points, name="points")
    n = x.shape[0]
    want = round(float(held_out_fraction) * n)
    if want < 1 or want > n - 1:
        raise ValueError(
            f"a held-out fraction of {held_out_fraction} of {n} points leaves an empty part "
            f"({want} held out): give more points or another fraction"
        )
    _, group = torch.unique(x.reshape(n, -1), dim=0, return_inverse=True)
    groups = int(group.max()) + 1
    if groups < 2:
        raise ValueError(f"all {n} points are the same point: it cannot be in both parts")
    order = torch.randperm(groups, generator=torch.Generator().manual_seed(seed))
    sizes = torch.bincount(group, minlength=groups)[order]
    taken = int(torch.searchsorted(torch.cumsum(sizes, 0), torch.tensor(want))) + 1
    if taken >= groups:  # the last group would empty the training part: keep it there
        taken = groups - 1
    held_groups = torch.zeros(groups, dtype=torch.bool)
    held_groups[order[:taken]] = True
    held = held_groups[group]
    return PointSplit(train=x[~held], held_out=x[held])


def check_split_sizes(
    name: str, train: int, held_out: int, fraction: float, *, warn: bool = True
) -> None:
    """Refuse a split whose training or held-out part has fewer than :data:`MIN_PART_POINTS`
    points (a ``ValueError`` naming the minimum and the held-out fraction); with ``warn``, warn
    (a ``UserWarning``) when a part has fewer than :data:`NOISY_PART_POINTS`."""
    small = {k: v for k, v in (("training", train), ("held-out", held_out)) if v < MIN_PART_POINTS}
    if small:
        parts = ", ".join(f"{v} {k}" for k, v in small.items())
        raise ValueError(
            f"{name}: a held-out fraction of {fraction} leaves {parts} point(s); each part needs "
            f"at least {MIN_PART_POINTS} points to be measured (the noise floor compares the two "
            f"parts, every model is scored against the held-out part): give a file with more "
            f"points or another --held-out-fraction"
        )
    noisy = [k for k, v in (("training", train), ("held-out", held_out)) if v < NOISY_PART_POINTS]
    if noisy and warn:
        warnings.warn(
            f"{name}: the {' and '.join(noisy)} part(s) have fewer than {NOISY_PART_POINTS} "
            f"points ({train} training, {held_out} held out): W2 and its noise floor will be noisy",
            UserWarning,
            stacklevel=2,
        )
