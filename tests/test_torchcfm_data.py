"""The torchcfm benchmark's datasets: seeded, and their moments against the definitions
(bezkit.data.torchcfm2d's docstring, METHODS.md section 8)."""

from __future__ import annotations

import math

import pytest
import torch

from bezkit.cli.inputs import dataset
from bezkit.data import NAMED_DATASETS, TORCHCFM_DATASETS, TOY_DATASETS, get_sampler

pytestmark = pytest.mark.usefixtures("single_thread")

N = 40_000
PI = math.pi


def _check_moment(values: torch.Tensor, expected: float, what: str) -> None:
    """The mean of ``values`` (one per point) within 6 standard errors of ``expected``."""
    v = values.double()
    se = float(v.std()) / math.sqrt(v.numel())
    got = float(v.mean())
    assert abs(got - expected) < 6 * se + 1e-9, f"{what}: {got:.4f} vs {expected:.4f} (se {se:.4f})"


def _check_moments(name: str, mean: tuple[float, float], cov: list[list[float]]) -> None:
    x = get_sampler(name).sample(N, torch.Generator().manual_seed(3)).double()
    for i in range(2):
        _check_moment(x[:, i], mean[i], f"{name} mean[{i}]")
        for j in range(2):
            prod = (x[:, i] - mean[i]) * (x[:, j] - mean[j])
            _check_moment(prod, cov[i][j], f"{name} cov[{i}][{j}]")


def test_names_are_their_own_and_known_to_the_cli():
    assert not set(TORCHCFM_DATASETS) & set(TOY_DATASETS)
    assert set(NAMED_DATASETS) == set(TOY_DATASETS) | set(TORCHCFM_DATASETS)
    for name in TORCHCFM_DATASETS:
        assert dataset(name) == name
    # bezkit's own 8gaussians keeps its radius 2
    x = get_sampler("8gaussians").sample(2000, torch.Generator().manual_seed(0))
    assert abs(float(x.norm(dim=1).mean()) - 2.0) < 0.1


@pytest.mark.parametrize("name", sorted(TORCHCFM_DATASETS))
def test_seeded_and_float32(name):
    s = get_sampler(name)
    a = s.sample(500, torch.Generator().manual_seed(1))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, s.sample(500, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, s.sample(500, torch.Generator().manual_seed(2)))


def test_eight_gaussians_radius_5_std_1():
    _check_moments("torchcfm-8gaussians", (0.0, 0.0), [[13.5, 0.0], [0.0, 13.5]])
    # the covariance fixes r^2 / 2 + s^2; E||x||^4 = r^4 + 8 r^2 s^2 + 8 s^4 separates r and s
    x = get_sampler("torchcfm-8gaussians").sample(N, torch.Generator().manual_seed(4)).double()
    _check_moment(x.pow(2).sum(dim=1).pow(2), 625.0 + 200.0 + 8.0, "E||x||^4")


def test_moons_scaled_by_2_and_shifted():
    var_x = 4 * (0.75 + 0.05**2)
    var_y = 4 * (0.5625 - 1 / PI + 0.05**2)
    cov_xy = 4 * (0.125 - 1 / PI)
    _check_moments("torchcfm-moons", (0.0, 0.5), [[var_x, cov_xy], [cov_xy, var_y]])


def test_scurve_x_and_z_scaled_by_1_5():
    # s ~ U[-3 pi / 2, 3 pi / 2]: E sin^2 s = 1/2, E (cos s - 1)^2 = 3/2 + 4 / (3 pi),
    # E sin(s) sign(s) (cos s - 1) = -1 / (3 pi); plus the noise variance 0.05^2 on the diagonal
    var_x = 2.25 * (0.5 + 0.05**2)
    var_z = 2.25 * (1.5 + 4 / (3 * PI) + 0.05**2)
    cov = 2.25 * (-1 / (3 * PI))
    _check_moments("torchcfm-scurve", (0.0, 0.0), [[var_x, cov], [cov, var_z]])


def test_twodim_moons_standardised_times_7():
    x = get_sampler("torchcfm-twodim-moons").sample(N, torch.Generator().manual_seed(5)).double()
    pooled = x.flatten()
    _check_moment(pooled, 0.0, "pooled mean")
    _check_moment(pooled.pow(2), 49.0, "pooled second moment")


def test_twodim_eight_gaussians_radius_12_std_1_5():
    _check_moments("torchcfm-twodim-8gaussians", (0.0, 0.0), [[74.25, 0.0], [0.0, 74.25]])
