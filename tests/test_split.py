"""A user's point set split into train and held-out parts: disjoint, complete, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bezkit.data import split_points


def rows(x: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(map(tuple, x.reshape(x.shape[0], -1).tolist()))


def check_split(points: torch.Tensor, fraction: float, seed: int) -> None:
    train, held = split_points(points, fraction, seed)
    # complete: together the parts are exactly the input rows (as a multiset)
    assert rows(torch.cat([train, held])) == rows(points)
    # disjoint: no point (coordinates) in both parts
    assert not set(rows(train)) & set(rows(held))
    assert len(train) >= 1 and len(held) >= 1
    # deterministic for a seed
    again = split_points(points, fraction, seed)
    assert torch.equal(again.train, train) and torch.equal(again.held_out, held)


def test_split_sizes_order_and_seed(gen):
    points = torch.randn(1000, 2, generator=gen)
    split = split_points(points, 0.2, seed=3)
    assert split.held_out.shape == (200, 2) and split.train.shape == (800, 2)
    check_split(points, 0.2, 3)
    # each part keeps the original row order
    index = {tuple(r): i for i, r in enumerate(points.tolist())}
    for part in split:
        pos = [index[tuple(r)] for r in part.tolist()]
        assert pos == sorted(pos)
    other = split_points(points, 0.2, seed=4)
    assert not torch.equal(other.held_out, split.held_out)


def test_repeated_points_stay_on_one_side(gen):
    base = torch.randn(30, 2, generator=gen)
    points = torch.cat([base, base[:10], base[:5]])  # some points appear two or three times
    for seed in range(5):
        check_split(points, 0.3, seed)


def test_numpy_and_integer_input():
    pts = np.arange(40, dtype=np.int64).reshape(20, 2)
    train, held = split_points(pts, 0.25, seed=0)
    assert train.dtype == torch.float32 and held.shape == (5, 2)


def test_bad_input_gets_clear_errors(gen):
    points = torch.randn(10, 2, generator=gen)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="held_out_fraction must lie strictly in"):
            split_points(points, bad)
    with pytest.raises(TypeError, match="held_out_fraction must be a number"):
        split_points(points, "0.2")
    with pytest.raises(ValueError, match="leaves an empty part"):
        split_points(points, 0.01)
    with pytest.raises(ValueError, match="leaves an empty part"):
        split_points(points[:1], 0.5)
    with pytest.raises(ValueError, match="same point"):
        split_points(torch.ones(10, 2), 0.5)
    with pytest.raises(ValueError, match="NaN or inf"):
        split_points(torch.full((4, 2), float("nan")), 0.5)
    with pytest.raises(TypeError, match="seed must be an int"):
        split_points(points, 0.5, seed=1.5)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 200),
    dup=st.integers(0, 50),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31 - 1),
)
def test_split_property(n, dup, fraction, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 3, generator=g).round(decimals=1)  # rounding makes repeats likely
    points = torch.cat([base, base[torch.randint(0, n, (dup,), generator=g)]])
    total = len(points)
    want = round(fraction * total)
    distinct = len(set(rows(points)))
    if want < 1 or want > total - 1 or distinct < 2:
        with pytest.raises(ValueError):
            split_points(points, fraction, seed)
        return
    check_split(points, fraction, seed)
    held = split_points(points, fraction, seed).held_out
    if distinct == total:  # no repeats: the held-out size is exact
        assert len(held) == want
