"""The 2D datasets of the torchcfm benchmark (Tong et al., TMLR 2024, Table 2), under their own names.

bezkit's own toys (``bezkit.data.toy2d``) keep their names and scales; these follow the runner of
github.com/atong01/conditional-flow-matching (``runner/``), read and re-written here as seeded
i.i.d. samplers (METHODS.md section 10 lists every source and every difference):

- ``torchcfm-8gaussians``: 8 Gaussians of std 1 centred on a circle of radius 5 at angles
  ``k * 45`` degrees (``runner/src/datamodules/distribution_datamodule.py``, ``TorchDynDataModule``
  with ``system: gaussians``: torchdyn's ``generate_gaussians`` with ``radius=5``,
  ``std_gaussians=1``). Mean 0, covariance ``(5^2 / 2 + 1) I = 13.5 I``.
- ``torchcfm-moons``: sklearn's two moons with noise std 0.05, scaled by 2 and shifted by -1 along
  x (``SKLearnDataModule``, ``system: moons``). Mean ``(0, 0.5)``.
- ``torchcfm-scurve``: sklearn's S curve (noise std 0.05), its x and z coordinates, scaled by 1.5
  (``SKLearnDataModule``, ``system: scurve``). Mean 0.
- ``torchcfm-twodim-moons`` and ``torchcfm-twodim-8gaussians``: the two ends of the moons ->
  8gaussians task (``TwoDimDataModule``, ``system: moon-8gaussians``, whose generators are
  ``runner/src/datamodules/components/two_dim.py``, adapted there from the diffusion Schrodinger
  bridge code): moons with noise std 0.1 standardised by one scalar mean and std over all
  coordinates, times 7; and 8 Gaussians of std 0.5 on a circle of radius 4, all times 3 (so radius
  12, std 1.5; covariance ``(12^2 / 2 + 1.5^2) I = 74.25 I``).

Where torchcfm standardises by the sample's own mean and std (twodim moons) these samplers use the
population values, so a sample does not depend on its size; sklearn's moons put the points on an
evenly spaced grid of angles, these draw the angle uniformly (the grid's limit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "TORCHCFM_DATASETS",
    "TWODIM_MOONS_MEAN",
    "TWODIM_MOONS_STD",
    "moons_xy",
]


def moons_xy(n: int, noise: float, g: torch.Generator | None) -> Tensor:
    """sklearn's two moons of radius 1 with Gaussian noise of std ``noise``, i.i.d.: each point on
    the upper moon ``(cos a, sin a)`` or the lower ``(1 - cos a, 1/2 - sin a)`` with probability
    1/2, ``a ~ U[0, pi]``. Mean ``(1/2, 1/4)``; ``E x^2 = 1``, ``E y^2 = 5/8 - 1/pi`` (plus the
    noise variance on each)."""
    upper = torch.rand(n, generator=g) < 0.5
    a = torch.rand(n, generator=g) * math.pi
    x = torch.where(upper, torch.cos(a), 1.0 - torch.cos(a))
    y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a))
    return torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=g)


def _ring(n: int, g: torch.Generator | None, *, radius: float, std: float) -> Tensor:
    """Equal-weight Gaussians of std ``std`` centred at ``radius (cos k pi/4, sin k pi/4)``."""
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.to(torch.float32) * (2 * math.pi / 8)
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=g)


def _eight_gaussians(n: int, g: torch.Generator | None) -> Tensor:
    return _ring(n, g, radius=5.0, std=1.0)


def _moons(n: int, g: torch.Generator | None) -> Tensor:
    return 2.0 * moons_xy(n, 0.05, g) - torch.tensor([1.0, 0.0])


def _scurve(n: int, g: torch.Generator | None) -> Tensor:
    # sklearn.datasets.make_s_curve: s = 3 pi (u - 1/2), (sin s, 2 v, sign(s) (cos s - 1)) + noise;
    # the benchmark keeps the first and third coordinates and scales them by 1.5
    s = 3.0 * math.pi * (torch.rand(n, generator=g) - 0.5)
    xz = torch.stack([torch.sin(s), torch.sign(s) * (torch.cos(s) - 1.0)], dim=1)
    return 1.5 * (xz + 0.05 * torch.randn(n, 2, generator=g))


# the population mean and std of all coordinates of moons_xy(noise=0.1) together:
# m = (1/2 + 1/4) / 2;  E v^2 = (1 + 5/8 - 1/pi) / 2 + 0.1^2;  std = sqrt(E v^2 - m^2)
TWODIM_MOONS_MEAN = 0.375
TWODIM_MOONS_STD = math.sqrt((1.0 + 0.625 - 1.0 / math.pi) / 2 + 0.01 - 0.375**2)


def _twodim_moons(n: int, g: torch.Generator | None) -> Tensor:
    return 7.0 * (moons_xy(n, 0.1, g) - TWODIM_MOONS_MEAN) / TWODIM_MOONS_STD


def _twodim_eight_gaussians(n: int, g: torch.Generator | None) -> Tensor:
    return 3.0 * _ring(n, g, radius=4.0, std=0.5)


TORCHCFM_DATASETS: dict[str, Callable[[int, torch.Generator | None], Tensor]] = {
    "torchcfm-8gaussians": _eight_gaussians,
    "torchcfm-moons": _moons,
    "torchcfm-scurve": _scurve,
    "torchcfm-twodim-moons": _twodim_moons,
    "torchcfm-twodim-8gaussians": _twodim_eight_gaussians,
}
