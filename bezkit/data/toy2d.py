"""Seeded 2D toy distributions: the source and target samples of every 2D experiment.

Every sampler has ``sample(n, generator) -> Tensor`` of shape ``(n, 2)`` and float32 dtype. The same
generator state gives the same points, so a seed fixes every figure and number.

Scales (chosen so that all toys have a spread comparable to a standard normal, about 1 to 4):

- ``gaussian``: standard normal N(0, I).
- ``8gaussians``: 8 Gaussians (std 0.2) on a circle of radius 2 (angles k * 45 degrees).
- ``25gaussians``: a 5 x 5 grid of Gaussians (std 0.05) at {-2, -1, 0, 1, 2}^2.
- ``moons``: two interleaving half circles of radius 1 (sklearn's layout), centred and scaled by 2,
  noise std 0.05 before scaling; roughly in [-3, 3] x [-1.5, 1.5].
- ``spirals``: two interleaved Archimedean spirals r = theta / (2 pi) * 0.9 scaled to radius ~3.
- ``checkerboard``: uniform on the 8 dark squares of a 4 x 4 board of side 1 on [-2, 2]^2.
- ``rings``: three concentric rings of radius 1, 2, 3 (equal mass per unit length), noise std 0.05.

The torchcfm benchmark's datasets (``bezkit.data.torchcfm2d``, names ``torchcfm-*``) are known to
:func:`get_sampler` and :class:`ToySampler` too (``NAMED_DATASETS`` holds both families); their
scales are the benchmark's, not the ones above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from bezkit.data.torchcfm2d import TORCHCFM_DATASETS

__all__ = [
    "NAMED_DATASETS",
    "TOY_DATASETS",
    "ArraySampler",
    "Sampler",
    "ToySampler",
    "check_points",
    "get_sampler",
    "load_points",
]


class Sampler(Protocol):
    """Anything that draws ``(n, *data_shape)`` samples from a seeded generator."""

    name: str

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points of shape ``(n, d)``, drawn with ``generator`` (seeded draws are
        reproducible)."""


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"number of samples n must be a positive int, got {n!r}")


def check_points(x: Tensor, *, name: str = "points", dim: int | None = None) -> Tensor:
    """Return ``x`` as float32 after checking it is a finite ``(n, ...)`` tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(
            f"{name} must have shape (n, *data_shape) with n >= 1, got {tuple(x.shape)}"
        )
    if dim is not None and (x.ndim != 2 or x.shape[1] != dim):
        raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(x.shape)}")
    bad = ~torch.isfinite(x)
    if bad.any():
        rows = torch.nonzero(bad.reshape(x.shape[0], -1).any(dim=1)).flatten()
        raise ValueError(
            f"{name} contains NaN or inf in {rows.numel()} row(s), first at row {int(rows[0])}"
        )
    return x.float()


# -- the toy generators: each maps (n, generator) to an (n, 2) float tensor ------------------


def _gaussian(n: int, g: torch.Generator | None) -> Tensor:
    return torch.randn(n, 2, generator=g)


def _eight_gaussians(n: int, g: torch.Generator | None) -> Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.float() * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + 0.2 * torch.randn(n, 2, generator=g)


def _twentyfive_gaussians(n: int, g: torch.Generator | None) -> Tensor:
    k = torch.randint(0, 25, (n,), generator=g)
    centres = torch.stack([(k // 5).float() - 2.0, (k % 5).float() - 2.0], dim=1)
    return centres + 0.05 * torch.randn(n, 2, generator=g)


def _moons(n: int, g: torch.Generator | None) -> Tensor:
    upper = torch.rand(n, generator=g) < 0.5
    theta = torch.rand(n, generator=g) * math.pi
    x = torch.where(upper, torch.cos(theta), 1.0 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x, y], dim=1) + 0.05 * torch.randn(n, 2, generator=g)
    return 2.0 * (pts - torch.tensor([0.5, 0.25]))


def _spirals(n: int, g: torch.Generator | None) -> Tensor:
    arm = torch.rand(n, generator=g) < 0.5
    theta = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi  # more mass at large radius
    r = theta / (3 * math.pi) * 3.0
    sign = torch.where(arm, 1.0, -1.0)
    pts = sign[:, None] * torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
    return pts + 0.05 * torch.randn(n, 2, generator=g)


def _checkerboard(n: int, g: torch.Generator | None) -> Tensor:
    # pick one of the 8 dark squares of a 4 x 4 board on [-2, 2]^2, then a uniform point inside
    k = torch.randint(0, 8, (n,), generator=g)
    row = k // 2
    col = 2 * (k % 2) + (row % 2)
    corner = torch.stack([col.float() - 2.0, row.float() - 2.0], dim=1)
    return corner + torch.rand(n, 2, generator=g)


def _rings(n: int, g: torch.Generator | None) -> Tensor:
    radii = torch.tensor([1.0, 2.0, 3.0])
    k = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=g)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    r = radii[k]
    pts = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)
    return pts + 0.05 * torch.randn(n, 2, generator=g)


TOY_DATASETS: dict[str, Callable[[int, torch.Generator | None], Tensor]] = {
    "gaussian": _gaussian,
    "8gaussians": _eight_gaussians,
    "25gaussians": _twentyfive_gaussians,
    "moons": _moons,
    "spirals": _spirals,
    "checkerboard": _checkerboard,
    "rings": _rings,
}

#: every named 2D distribution: bezkit's toys and the torchcfm benchmark's (``torchcfm-*``)
NAMED_DATASETS: dict[str, Callable[[int, torch.Generator | None], Tensor]] = {
    **TOY_DATASETS,
    **TORCHCFM_DATASETS,
}


class ToySampler:
    """A named 2D toy distribution, ``sample(n, generator) -> (n, 2)``."""

    data_shape = (2,)

    def __init__(self, name: str) -> None:
        if name not in NAMED_DATASETS:
            known = ", ".join(sorted(NAMED_DATASETS))
            raise ValueError(f"unknown dataset {name!r}; known 2D datasets: {known}")
        self.name = name
        self._fn = NAMED_DATASETS[name]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points of the named toy distribution, shape ``(n, 2)``, drawn with ``generator``."""
        _check_n(n)
        return self._fn(n, generator)

    def __repr__(self) -> str:
        return f"ToySampler({self.name!r})"


class ArraySampler:
    """Samples rows of a fixed array uniformly with replacement (a user's own 2D data)."""

    def __init__(self, points: Tensor | np.ndarray, *, name: str = "array") -> None:
        if isinstance(points, np.ndarray):
            points = torch.from_numpy(np.ascontiguousarray(points))
        self.points = check_points(points, name=f"data {name!r}")
        self.data_shape = tuple(self.points.shape[1:])
        self.name = name

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` rows of ``points`` drawn uniformly with replacement (the empirical distribution)."""
        _check_n(n)
        idx = torch.randint(0, self.points.shape[0], (n,), generator=generator)
        return self.points[idx]

    def __repr__(self) -> str:
        return f"ArraySampler(name={self.name!r}, n={self.points.shape[0]})"


def _read_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            loaded = np.load(path, allow_pickle=False)
        except EOFError:
            raise ValueError(f"data file {path} is empty (no .npy header)") from None
        except ValueError as err:  # pickled objects, a damaged header, a truncated array
            raise ValueError(f"cannot read data file {path} as .npy: {err}") from None
        if not isinstance(loaded, np.ndarray):  # np.load opens a .npz archive whatever its name
            names = list(loaded.files)
            loaded.close()
            raise ValueError(
                f"data file {path} is a .npz archive (arrays {names}), not a .npy array; save "
                "one (n, d) array with np.save, or load the archive and save the array you need"
            )
        return loaded
    if suffix == ".csv":
        try:  # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first value
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"data file {path} is not UTF-8 text ({err.reason} at byte {err.start}); save "
                "it as a plain-text CSV of numbers"
            ) from None
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"data file {path} is empty")
        try:
            [float(v) for v in lines[0].strip().split(",")]
            skip = 0
        except ValueError:
            skip = 1  # a header line
        if len(lines) <= skip:
            raise ValueError(f"data file {path} has a header but no rows")
        try:
            return np.loadtxt(lines[skip:], delimiter=",", ndmin=2)
        except ValueError as err:
            raise ValueError(f"cannot read data file {path} as CSV numbers: {err}") from None
    raise ValueError(f"unsupported data file type {suffix!r} for {path}; use .npy or .csv")


def load_points(path: str | Path) -> Tensor:
    """Load an ``(n, d)`` array of real numbers from a ``.npy`` or ``.csv`` file (CSV: comma
    separated, an optional header line of non-numbers is skipped), as float32.

    Refused, with an error naming the file and the problem: a missing file or a folder, an empty
    or damaged file, pickled objects, an array that is not 2D or has no rows, non-numbers
    (strings, booleans), complex numbers, NaN or inf, and values beyond float32's range
    (|x| > 3.4e38, which would become inf).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"data file {path} is a folder; give a .npy or .csv file")
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    arr = _read_array(path)
    if np.iscomplexobj(arr):
        raise TypeError(
            f"data file {path} holds complex numbers ({arr.dtype}); give real coordinates "
            "(e.g. np.stack([z.real, z.imag], axis=1))"
        )
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"data file {path} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"data file {path} must hold an (n, d) array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"data file {path} holds no points (shape {arr.shape})")
    wide = arr.astype(np.float64)
    if not np.isfinite(wide).all():
        row = int(np.nonzero(~np.isfinite(wide).all(axis=1))[0][0])
        raise ValueError(f"data file {path} contains NaN or inf, first at row {row}")
    limit = float(np.finfo(np.float32).max)
    too_big = np.abs(wide) > limit
    if too_big.any():
        row = int(np.nonzero(too_big.any(axis=1))[0][0])
        raise ValueError(
            f"data file {path} has values beyond float32's range (|x| > {limit:.3g}), first at "
            f"row {row}; rescale the data"
        )
    return check_points(torch.from_numpy(arr.astype(np.float32)), name=f"data file {path}")


def get_sampler(name: str) -> Sampler:
    """Look a 2D distribution up by name, or load a user's ``.npy`` / ``.csv`` file.

    >>> get_sampler("moons").sample(3, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """
    if name.lower().endswith((".npy", ".csv")):
        return ArraySampler(load_points(name), name=Path(name).name)
    return ToySampler(name)
