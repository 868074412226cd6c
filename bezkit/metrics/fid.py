"""FID: the Frechet distance between Inception features of generated and real CIFAR-10 images.

    FID = ||mu_g - mu_r||^2 + tr(S_g) + tr(S_r) - 2 tr((S_g S_r)^{1/2})

with ``(mu, S)`` the mean and covariance of the 2048 pool3 features of the FID Inception network
(``bezkit.metrics.inception``: torch-fidelity's where torchvision imports, else bezkit's port;
weights only from a local file). The protocol: 50 000 generated samples, quantised to 8 bits,
against the statistics of the 50 000 CIFAR-10 train images (computed once and cached).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.data.cifar10 import CIFAR10Dataset, uint8_to_unit_range
from bezkit.files.atomic import atomic_write, sha256_file
from bezkit.metrics.feature_cache import cache_dir
from bezkit.metrics.frechet import RunningMoments, Statistics, frechet_distance
from bezkit.metrics.inception import (
    FID_WEIGHTS_ENV,
    Backend,
    fid_backend,
    fid_weights_path,
    load_fid_inception,
)

__all__ = [
    "FID_WEIGHTS_ENV",
    "cifar10_fid",
    "cifar10_train_statistics",
    "inception_statistics",
]


def _batches(images: Tensor | Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    if isinstance(images, Tensor):
        yield from images.split(batch_size)
    else:
        yield from images


def inception_statistics(
    images: Tensor | Iterable[Tensor],
    model: nn.Module,
    *,
    batch_size: int = 200,
    quantize: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, covariance and count of the pool3 features (``model``, from ``load_fid_inception``)
    of images ``(n, 3, H, W)`` in [-1, 1] (a tensor, or an iterable of such batches so that
    50 000 samples need not fit in memory).

    ``quantize`` rounds to the 256 levels of an 8-bit image first, as saving samples to PNG does.
    """
    device = next(model.parameters()).device
    moments = RunningMoments()
    for batch in _batches(images, batch_size):
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"FID expects image batches (n, 3, H, W), got {tuple(batch.shape)}")
        if not torch.isfinite(batch).all():
            raise ValueError("images contain NaN or inf")
        x = batch.to(device=device, dtype=torch.float32).clamp(-1.0, 1.0)
        if quantize:
            x = torch.round((x + 1.0) * 127.5) / 127.5 - 1.0
        with torch.no_grad():
            moments.update(model(x))
    mu, sigma = moments.statistics()
    return mu, sigma, moments.n


def _sha256_prefix(path: Path, length: int = 12) -> str:
    return sha256_file(path)[:length]


def cifar10_train_statistics(
    root: str | Path,
    inception_weights: str | Path | None = None,
    *,
    cache: str | Path | None = None,
    batch_size: int = 200,
    device: torch.device | str = "cpu",
    verify: bool = True,
    backend: Backend = "auto",
) -> Statistics:
    """FID reference statistics of the 50 000 CIFAR-10 train images (no flips), computed once and
    cached as ``cifar10-train-fid-<weights sha256 prefix>[-torch-fidelity].npz`` (arrays ``mu``,
    ``sigma``; one file per backend, see ``bezkit.metrics.inception``)."""
    weights = fid_weights_path(inception_weights)
    used = fid_backend(backend)
    suffix = "" if used == "bezkit" else f"-{used}"
    target = cache_dir(cache) / f"cifar10-train-fid-{_sha256_prefix(weights)}{suffix}.npz"
    if target.is_file():
        with np.load(target, allow_pickle=False) as stats:
            return stats["mu"], stats["sigma"]
    dataset = CIFAR10Dataset(root, "train", flip=False, verify=verify)
    model = load_fid_inception(weights, device=device, backend=used)  # type: ignore[arg-type]
    batches = (uint8_to_unit_range(b) for b in dataset.data.split(batch_size))
    mu, sigma, _ = inception_statistics(batches, model, quantize=False)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, mu=mu, sigma=sigma)

    atomic_write(target, write)
    return mu, sigma


def cifar10_fid(
    samples: Tensor | Iterable[Tensor],
    inception_weights: str | Path | None = None,
    *,
    reference_stats: Statistics | str | Path | None = None,
    cifar_root: str | Path | None = None,
    cache: str | Path | None = None,
    batch_size: int = 200,
    device: torch.device | str = "cpu",
    method: Literal["sqrtm", "eigh"] = "sqrtm",
    expected_samples: int = 50_000,
    backend: Backend = "auto",
    verify: bool = True,
) -> float:
    """FID of generated CIFAR-10 samples (in [-1, 1]) against reference statistics.

    The reference is ``reference_stats`` (a ``(mu, sigma)`` pair or an ``.npz`` file with arrays
    ``mu`` and ``sigma``), else the train-split statistics from ``cifar_root`` (computed once and
    cached, see ``cifar10_train_statistics``); the Inception network is ``backend``'s
    (``bezkit.metrics.inception``: torch-fidelity's where torchvision imports). Fewer samples than ``expected_samples`` (the
    standard 50 000) give a warning: FID is biased upwards at small sample sizes.
    """
    weights = fid_weights_path(inception_weights)
    used = fid_backend(backend)
    if reference_stats is None:
        if cifar_root is None:
            raise ValueError("cifar10_fid needs reference_stats or cifar_root (the train split)")
        mu_ref, sigma_ref = cifar10_train_statistics(
            cifar_root,
            weights,
            cache=cache,
            batch_size=batch_size,
            device=device,
            backend=used,  # type: ignore[arg-type]
            verify=verify,
        )
    elif isinstance(reference_stats, str | Path):
        with np.load(reference_stats, allow_pickle=False) as stats:
            mu_ref, sigma_ref = stats["mu"], stats["sigma"]
    else:
        mu_ref, sigma_ref = reference_stats
    model = load_fid_inception(weights, device=device, backend=used)  # type: ignore[arg-type]
    mu, sigma, n = inception_statistics(samples, model, batch_size=batch_size)
    if n < expected_samples:
        warnings.warn(
            f"FID from {n} samples; the standard protocol uses {expected_samples} and FID is "
            f"biased upwards at small n, so this number is not comparable to published ones",
            stacklevel=2,
        )
    return frechet_distance(mu, sigma, mu_ref, sigma_ref, method=method)
