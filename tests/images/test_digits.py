"""scikit-learn digits as an image dataset."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from bezkit.data.digits import DigitsDataset


def test_scaling_shape_and_labels() -> None:
    ds = DigitsDataset("all")
    raw = load_digits()
    assert len(ds) == 1797 and ds.images.shape == (1797, 1, 8, 8) and ds.data_shape == (1, 8, 8)
    assert ds.images.dtype == torch.float32
    # v in 0..16 -> v / 8 - 1, pixel for pixel
    expected = torch.as_tensor(raw.images, dtype=torch.float32) / 8 - 1
    assert torch.equal(ds.images[:, 0], expected)
    assert ds.images.min() == -1.0 and ds.images.max() == 1.0
    assert ds.labels.tolist() == raw.target.tolist()


def test_split_is_seeded_disjoint_and_complete() -> None:
    train, test = DigitsDataset("train"), DigitsDataset("test")
    assert len(test) == round(0.2 * 1797) == 359 and len(train) == 1797 - 359
    everything = torch.cat([train.images, test.images]).flatten(1)
    # the union is the whole data set (as a multiset of rows)
    full = DigitsDataset("all").images.flatten(1)
    assert torch.equal(everything.sort(0).values, full.sort(0).values)
    assert torch.equal(DigitsDataset("test").images, test.images)
    assert not torch.equal(DigitsDataset("test", split_seed=1).images, test.images)


def test_sample_api_and_no_flip_by_default() -> None:
    ds = DigitsDataset("train")
    a = ds.sample(500, torch.Generator().manual_seed(0))
    b = ds.sample(500, torch.Generator().manual_seed(0))
    assert a.shape == (500, 1, 8, 8) and torch.equal(a, b)
    rows = {tuple(r.tolist()) for r in ds.images.flatten(1)}
    assert all(tuple(r.tolist()) in rows for r in a.flatten(1))  # no flipped digit appears


def test_optional_flip_and_pad() -> None:
    plain = DigitsDataset("train")
    flipping = DigitsDataset("train", flip=True)
    x = plain.sample(1000, torch.Generator().manual_seed(2))
    y = flipping.sample(1000, torch.Generator().manual_seed(2))
    mirrored = (x.flip(-1) == y).flatten(1).all(1) & ~(x == y).flatten(1).all(1)
    assert 0.4 < mirrored.float().mean() < 0.6

    padded = DigitsDataset("train", pad=4)
    assert padded.data_shape == (1, 16, 16)
    assert torch.equal(padded.images[:, :, 4:12, 4:12], plain.images)
    assert (padded.images[:, :, :4] == -1).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        DigitsDataset("valid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive int"):
        DigitsDataset().sample(0)
