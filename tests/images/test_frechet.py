"""Frechet distance (against closed forms), the cached digits classifier, the FID plumbing."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import bezkit.metrics.digits_classifier as digits_module
import bezkit.metrics.fid as fid_module
from bezkit.data.cifar10 import CIFAR10_FOLDER, CIFAR10_SPLIT_FILES
from bezkit.data.digits import DigitsDataset
from bezkit.metrics import (
    cache_dir,
    cifar10_fid,
    cifar10_train_statistics,
    digits_features,
    digits_frechet_distance,
    frechet_distance,
    gaussian_statistics,
    inception_statistics,
    load_digits_classifier,
    load_fid_inception,
)
from bezkit.metrics.inception import write_random_fid_weights

METHODS = ["sqrtm", "eigh"]


def _random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# -- the Frechet distance against closed forms ----------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_identical_gaussians_give_zero(method: str) -> None:
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(10), _random_spd(10, rng)
    assert abs(frechet_distance(mu, sigma, mu, sigma, method=method)) < 1e-8


@pytest.mark.parametrize("method", METHODS)
def test_shifted_standard_normals_give_squared_shift(method: str) -> None:
    m = np.array([1.0, -2.0, 0.5, 3.0])
    eye = np.eye(4)
    assert frechet_distance(np.zeros(4), eye, m, eye, method=method) == pytest.approx(m @ m)


@pytest.mark.parametrize("method", METHODS)
def test_commuting_covariances_closed_form(method: str) -> None:
    """Same eigenvectors: d^2 = ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.1, 4.0, 6), rng.uniform(0.1, 4.0, 6)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(expected, rel=1e-9)


def test_methods_agree_and_distance_is_symmetric() -> None:
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(32, rng), _random_spd(32, rng)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    d_sqrtm = frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    assert frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(d_sqrtm, rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(d_sqrtm, rel=1e-8)
    assert d_sqrtm > 0


def test_singular_covariances_are_guarded() -> None:
    rng = np.random.default_rng(3)
    f = rng.standard_normal((5, 20))  # 5 samples in 20 dimensions: rank-4 covariance
    mu, sigma = gaussian_statistics(f)
    assert np.linalg.matrix_rank(sigma) == 4
    d = frechet_distance(mu, sigma, mu, sigma)
    assert np.isfinite(d) and abs(d) < 1e-3


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full(2, np.nan), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")  # type: ignore[arg-type]


def test_gaussian_statistics_matches_numpy() -> None:
    f = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    mu, sigma = gaussian_statistics(f)
    np.testing.assert_allclose(mu, f.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f.double().numpy(), rowvar=False), rtol=1e-12)


# -- digits: the cached classifier ----------------------------------------------------------


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("bezkit-cache")
    digits_module._LOADED.clear()
    load_digits_classifier(cache)  # trains once (a few seconds) and writes the file
    return cache


def test_classifier_is_accurate_and_cached(digits_cache: Path) -> None:
    path = digits_cache / "digits_classifier_v1.safetensors"
    assert path.is_file()
    meta = digits_module._read_metadata(path)
    assert float(meta["test_accuracy"]) > 0.95
    test = DigitsDataset("test")
    model = load_digits_classifier(digits_cache)
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).float().mean().item()
    assert accuracy == pytest.approx(float(meta["test_accuracy"]), abs=1e-4)

    # a fresh process (empty memo) loads the file instead of training again
    mtime = os.stat(path).st_mtime_ns
    before = digits_features(test.images[:10], cache=digits_cache)
    digits_module._LOADED.clear()
    after = digits_features(test.images[:10], cache=digits_cache)
    assert os.stat(path).st_mtime_ns == mtime
    torch.testing.assert_close(before, after)
    assert after.shape == (10, 64)


def test_cache_dir_from_environment(
    digits_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BEZKIT_CACHE", str(digits_cache))
    assert cache_dir() == digits_cache
    assert cache_dir(tmp_path) == tmp_path  # an argument wins over the environment
    monkeypatch.delenv("BEZKIT_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "bezkit"


def test_digits_frechet_orders_sample_quality(digits_cache: Path) -> None:
    train, test = DigitsDataset("train"), DigitsDataset("test")
    g = torch.Generator().manual_seed(0)
    same = digits_frechet_distance(test.images, test.images, cache=digits_cache)
    assert abs(same) < 1e-6
    real = digits_frechet_distance(train.images, test.images, cache=digits_cache)
    noisy = [
        digits_frechet_distance(
            (test.images + s * torch.randn(test.images.shape, generator=g)).clamp(-1, 1),
            train.images,
            cache=digits_cache,
        )
        for s in (0.25, 0.5, 1.0)
    ]
    ones_only = digits_frechet_distance(
        train.images[train.labels == 1], test.images, cache=digits_cache
    )
    assert real < noisy[0] < noisy[1] < noisy[2]
    assert real < ones_only


def test_digits_features_reject_wrong_shapes(digits_cache: Path) -> None:
    with pytest.raises(ValueError, match=r"\(n, 1, 8, 8\)"):
        digits_features(torch.zeros(3, 1, 16, 16), cache=digits_cache)
    with pytest.raises(ValueError, match="NaN"):
        digits_features(torch.full((3, 1, 8, 8), float("nan")), cache=digits_cache)


# -- FID: weights from a local file only ----------------------------------------------------


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random FID-Inception state dict in the pytorch-fid file format (with its 1008-way ``fc``,
    which the loader skips). He-initialised so that features do not vanish."""
    return write_random_fid_weights(tmp_path_factory.mktemp("fid") / "pt_inception-fake.pth")


def test_missing_weights_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEZKIT_FID_WEIGHTS", raising=False)
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"nope\.pth") as err:
        load_fid_inception(missing)
    assert "pt_inception-2015-12-05" in str(err.value)
    with pytest.raises(FileNotFoundError, match="BEZKIT_FID_WEIGHTS"):
        cifar10_fid(torch.zeros(2, 3, 32, 32), reference_stats=(np.zeros(2), np.eye(2)))


def test_wrong_weights_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not the FID Inception weights"):
        load_fid_inception(path)


def test_fid_plumbing_with_local_weights(fake_weights: Path, tmp_path: Path) -> None:
    model = load_fid_inception(fake_weights)
    assert not model.training
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mu, sigma, n = inception_statistics(x, model)
    assert n == 6 and mu.shape == (2048,) and sigma.shape == (2048, 2048)
    assert np.abs(mu).mean() > 1e-3  # features are alive
    # a tensor and an iterable of batches give the same statistics
    mu2, sigma2, _ = inception_statistics(iter(x.split(4)), model)
    np.testing.assert_allclose(mu2, mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-5, atol=1e-9)

    # reference = these very statistics shifted by 1 in every feature (as an .npz file, the
    # cached format): FID = ||1||^2 = 2048
    stats_file = tmp_path / "ref.npz"
    np.savez(stats_file, mu=mu + 1.0, sigma=sigma)
    with pytest.warns(UserWarning, match="50000"):
        fid = cifar10_fid(x, fake_weights, reference_stats=stats_file, method="eigh")
    assert fid == pytest.approx(2048.0, rel=1e-6)


def test_train_statistics_are_computed_once_and_cached(
    fake_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR10_SPLIT_FILES["train"]:
        batch = {
            b"batch_label": b"fixture",
            b"labels": [0, 1],
            b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
            b"filenames": [b"a.png", b"b.png"],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    cache = tmp_path / "cache"
    mu, sigma = cifar10_train_statistics(tmp_path / "data", fake_weights, cache=cache, verify=False)
    assert mu.shape == (2048,)
    assert len(list(cache.glob("cifar10-train-fid-*.npz"))) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("statistics should come from the cache")

    monkeypatch.setattr(fid_module, "load_fid_inception", fail)
    mu_c, sigma_c = cifar10_train_statistics(tmp_path / "data", fake_weights, cache=cache)
    np.testing.assert_array_equal(mu_c, mu)
    np.testing.assert_array_equal(sigma_c, sigma)
