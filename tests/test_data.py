"""2D data: seeded toy samplers (shape, determinism, the scales their docstring states) and user files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bezkit.data.toy2d import (
    TOY_DATASETS,
    ArraySampler,
    ToySampler,
    check_points,
    get_sampler,
    load_points,
)

pytestmark = pytest.mark.usefixtures("single_thread")

N = 4000


def binomial_tol(n: int, p: float, sigmas: float = 5.0) -> float:
    """Tolerance on an observed fraction: ``sigmas`` binomial standard deviations."""
    return sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_toy_sampler_is_seeded_finite_and_2d(name, make_gen):
    sampler = get_sampler(name)
    a = sampler.sample(N, make_gen(7))
    b = sampler.sample(N, make_gen(7))
    c = sampler.sample(N, make_gen(8))
    assert a.shape == (N, 2)
    assert a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b), "same seed must give the same points"
    assert not torch.equal(a, c), "a different seed must give different points"
    # not degenerate: spread comparable to a standard normal (about 1 to 4, docstring)
    std = a.std(dim=0)
    assert (std > 0.3).all() and (std < 4.0).all(), std


def test_gaussian_is_standard_normal(gen):
    x = get_sampler("gaussian").sample(20_000, gen)
    se = 5 / math.sqrt(x.shape[0])
    assert x.mean(0).abs().max() < se
    cov = torch.cov(x.T)
    torch.testing.assert_close(cov, torch.eye(2), atol=6 * math.sqrt(2 / x.shape[0]), rtol=0)


def test_eight_gaussians_on_circle_of_radius_two(gen):
    x = get_sampler("8gaussians").sample(N, gen).double()
    centres = 2.0 * torch.tensor(
        [[math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)] for k in range(8)],
        dtype=torch.float64,
    )
    d = torch.cdist(x, centres)
    nearest = d.argmin(1)
    resid = x - centres[nearest]
    # std 0.2 around each centre
    assert abs(float(resid.std()) - 0.2) < 0.02
    assert float(d.min(1).values.max()) < 6 * 0.2 * math.sqrt(2)
    assert abs(float(x.norm(dim=1).mean()) - 2.0) < 0.05
    frac = torch.bincount(nearest, minlength=8).double() / N
    assert (frac - 1 / 8).abs().max() < binomial_tol(N, 1 / 8)


def test_twentyfive_gaussians_on_integer_grid(gen):
    x = get_sampler("25gaussians").sample(N, gen)
    resid = x - x.round()
    assert abs(float(resid.std()) - 0.05) < 0.005
    assert x.round().abs().max() == 2
    cells = (x.round() + 2).long()
    frac = torch.bincount(cells[:, 0] * 5 + cells[:, 1], minlength=25).double() / N
    assert frac.numel() == 25
    assert (frac - 1 / 25).abs().max() < binomial_tol(N, 1 / 25)


def test_moons_are_centred_in_their_box(gen):
    x = get_sampler("moons").sample(N, gen)
    # two half circles of radius 1 scaled by 2, noise std 0.1 after scaling
    assert x[:, 0].abs().max() < 3.0 + 5 * 0.1
    assert x[:, 1].abs().max() < 1.5 + 5 * 0.1
    assert x[:, 0].abs().max() > 2.5  # it does reach the box
    assert x.mean(0).abs().max() < 0.1  # centred
    # each point lies on one of the two circles of radius 2 centred at (-1, -0.5) and (1, 0.5)
    c = torch.tensor([[-1.0, -0.5], [1.0, 0.5]])
    dist_to_circle = (torch.cdist(x, c) - 2.0).abs().min(1).values
    assert float(dist_to_circle.max()) < 6 * 0.1


def test_spirals_reach_radius_three_and_are_point_symmetric(gen):
    x = get_sampler("spirals").sample(N, gen)
    r = x.norm(dim=1)
    assert float(r.max()) < 3.0 + 0.3
    assert float(r.quantile(0.95)) > 2.5
    assert x.mean(0).abs().max() < 0.1  # two arms, mirror images through the origin
    # Archimedean: the radius grows linearly with the winding angle; far from the centre, the polar
    # angle modulo pi agrees with pi * r (both arms), up to noise
    far = r > 1.0
    phase = torch.remainder(math.pi * r[far] - torch.atan2(x[far, 1], x[far, 0]), math.pi)
    off = torch.minimum(phase, math.pi - phase)
    assert float(off.quantile(0.99)) < 0.5


def test_checkerboard_only_on_dark_squares(gen):
    x = get_sampler("checkerboard").sample(N, gen)
    assert x.min() >= -2 and x.max() <= 2
    cell = torch.floor(x).long()
    parity = (cell[:, 0] + cell[:, 1]) % 2
    assert (parity == parity[0]).all(), "points must all fall on squares of one colour"
    idx = (cell[:, 0] + 2) * 4 + (cell[:, 1] + 2)
    counts = torch.bincount(idx, minlength=16)
    assert int((counts > 0).sum()) == 8
    frac = counts[counts > 0].double() / N
    assert (frac - 1 / 8).abs().max() < binomial_tol(N, 1 / 8)


def test_rings_radii_and_mass_per_length(gen):
    x = get_sampler("rings").sample(N, gen)
    r = x.norm(dim=1)
    ring = r.round().long()
    assert set(ring.unique().tolist()) == {1, 2, 3}
    assert float((r - ring).abs().max()) < 6 * 0.05
    frac = torch.bincount(ring, minlength=4)[1:].double() / N
    expected = torch.tensor([1, 2, 3], dtype=torch.float64) / 6  # equal mass per unit length
    for f, p in zip(frac, expected):
        assert abs(float(f - p)) < binomial_tol(N, float(p))


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as err:
        get_sampler("nope")
    for name in TOY_DATASETS:
        assert name in str(err.value)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_sample_size(n, gen):
    with pytest.raises(ValueError, match="positive int"):
        ToySampler("moons").sample(n, gen)


def _points(np_rng, n=50):
    return np_rng.normal(size=(n, 2)).astype(np.float32)


def test_get_sampler_from_npy(tmp_path, np_rng, make_gen):
    pts = _points(np_rng)
    path = tmp_path / "pts.npy"
    np.save(path, pts)
    sampler = get_sampler(str(path))
    assert isinstance(sampler, ArraySampler)
    torch.testing.assert_close(sampler.points, torch.from_numpy(pts), rtol=0, atol=0)
    a = sampler.sample(200, make_gen(1))
    assert a.shape == (200, 2)
    assert torch.equal(a, sampler.sample(200, make_gen(1)))
    # every drawn row is one of the file's rows
    assert (a[:, None] == sampler.points[None]).all(-1).any(1).all()


@pytest.mark.parametrize("header", [False, True])
def test_get_sampler_from_csv(tmp_path, np_rng, header):
    pts = _points(np_rng).astype(np.float64)
    path = tmp_path / "pts.csv"
    lines = (["x,y"] if header else []) + [f"{a!r},{b!r}" for a, b in pts.tolist()]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_points(path)
    assert (
        loaded.shape == pts.shape
    )  # the header line was skipped, not read as data or dropped twice
    torch.testing.assert_close(loaded, torch.from_numpy(pts).float(), rtol=1e-6, atol=1e-6)
    assert get_sampler(str(path)).points.shape == pts.shape


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_csv_with_nan_or_inf_is_refused(tmp_path, bad):
    path = tmp_path / "bad.csv"
    path.write_text(f"x,y\n1.0,2.0\n3.0,{bad}\n")
    with pytest.raises(ValueError, match="NaN or inf"):
        get_sampler(str(path))


def test_missing_data_file(tmp_path):
    path = tmp_path / "missing.npy"
    with pytest.raises(FileNotFoundError, match="data file not found"):
        get_sampler(str(path))


def test_bad_data_files(tmp_path):
    one_d = tmp_path / "flat.npy"
    np.save(one_d, np.arange(5.0))
    with pytest.raises(ValueError, match=r"\(n, d\) array"):
        load_points(one_d)
    other = tmp_path / "pts.txt"
    other.write_text("1,2\n")
    with pytest.raises(ValueError, match="unsupported data file type"):
        load_points(other)


def test_check_points_rejects_non_finite_and_bad_shapes():
    x = torch.zeros(4, 2)
    x[2, 1] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or inf in 1 row.*row 2"):
        check_points(x)
    with pytest.raises(ValueError, match="shape"):
        check_points(torch.zeros(5))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        check_points(torch.zeros(5, 2), dim=3)
    with pytest.raises(TypeError, match="floating"):
        check_points(torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or inf"):
        ArraySampler(np.array([[0.0, np.nan]]))
