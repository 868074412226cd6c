"""scikit-learn's handwritten digits as an image dataset: bezkit's offline image default.

The data are the 1797 real 8x8 grey-level images that ship inside scikit-learn
(``sklearn.datasets.load_digits``), so no download is ever needed: images work on any laptop and
in CI.

Format:

- Pixel values are integers ``v`` in 0..16, mapped linearly to ``x = v / 8 - 1`` in [-1, 1]
  (0 -> -1 is the background, 16 -> +1 full ink).
- Images have shape ``(n, 1, 8, 8)`` and dtype float32. ``pad=p`` adds ``p`` background pixels
  (value -1) on every side, giving ``(n, 1, 8 + 2p, 8 + 2p)``; the default ``pad=0`` keeps 8x8.
- The train/test split is a seeded permutation of the 1797 images: the first
  ``round(test_fraction * 1797)`` permuted indices are the test split, the rest the train split.
  The same ``split_seed`` always gives the same split, and the two splits never overlap.
- Horizontal flips are off by default: digits are not mirror-symmetric (a flipped 3 is not a 3).

``DigitsDataset`` is both a seeded sampler (``sample(n, generator)``, like the 2D samplers of
``bezkit.data.toy2d``) and a ``torch.utils.data.Dataset`` of ``(image, label)`` for a DataLoader.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["DIGITS_SHAPE", "DigitsDataset", "digits_to_unit_range"]

DIGITS_SHAPE: tuple[int, int, int] = (1, 8, 8)
_MAX_VALUE = 16.0

Split = Literal["train", "test", "all"]


def digits_to_unit_range(values: np.ndarray | Tensor) -> Tensor:
    """Map raw digit pixel values 0..16 to [-1, 1]: ``x = v / 8 - 1``."""
    v = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    return v * (2.0 / _MAX_VALUE) - 1.0


class DigitsDataset(Dataset[tuple[Tensor, int]]):
    """The 8x8 handwritten digits in [-1, 1], shape ``(n, 1, 8, 8)`` (or padded, see module doc).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"`` (all 1797 images, no split).
        test_fraction: fraction of the images held out as the test split.
        split_seed: seed of the permutation that defines the split.
        flip: random horizontal flips in ``sample`` and ``__getitem__`` (off by default).
        pad: background pixels (value -1) added on each side; 0 keeps the native 8x8.

    Attributes:
        images: float32 ``(n, 1, H, W)`` in [-1, 1].
        labels: int64 ``(n,)`` digit classes 0..9.
        data_shape: ``(1, H, W)``.
    """

    def __init__(
        self,
        split: Split = "train",
        *,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        flip: bool = False,
        pad: int = 0,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
            raise ValueError(f"pad must be an int >= 0, got {pad!r}")
        from sklearn.datasets import load_digits  # lazy: scikit-learn is only needed here

        raw = load_digits()
        images = digits_to_unit_range(raw.images).unsqueeze(1)  # (1797, 1, 8, 8)
        labels = torch.as_tensor(raw.target, dtype=torch.int64)
        if pad:
            images = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=-1.0)

        if split != "all":
            perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
            n_test = round(test_fraction * len(labels))
            idx = perm[:n_test] if split == "test" else perm[n_test:]
            images, labels = images[idx], labels[idx]

        self.images: Tensor = images.contiguous()
        self.labels: Tensor = labels
        self.split = split
        self.flip = flip
        self.data_shape: tuple[int, ...] = tuple(images.shape[1:])
        self.name = f"digits-{split}"

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return image, int(self.labels[index])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images uniformly with replacement (flipped with probability 1/2 if
        ``flip``); the same generator state gives the same images."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"number of samples n must be a positive int, got {n!r}")
        idx = torch.randint(0, len(self), (n,), generator=generator)
        x = self.images[idx]
        if self.flip:
            flips = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        return x

    def __repr__(self) -> str:
        return (
            f"DigitsDataset(split={self.split!r}, n={len(self)}, shape={self.data_shape}, "
            f"flip={self.flip})"
        )
