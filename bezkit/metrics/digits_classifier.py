"""Digits features offline: a small classifier as the feature extractor of a Frechet distance.

``DigitsClassifier`` is a small CNN trained once (seeded, a few seconds on a CPU) on the train
split of ``bezkit.data.digits`` and cached as safetensors in the cache folder (argument ``cache``,
else ``$BEZKIT_CACHE``, else ``~/.cache/bezkit``). Its 64-dimensional penultimate layer gives
``digits_features``; ``digits_frechet_distance`` is the Frechet distance
(``bezkit.metrics.frechet``) in those features, the digits analogue of FID.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from bezkit.data.digits import DigitsDataset
from bezkit.files.atomic import atomic_write
from bezkit.metrics.feature_cache import cache_dir
from bezkit.metrics.frechet import frechet_distance, gaussian_statistics

__all__ = [
    "DigitsClassifier",
    "digits_features",
    "digits_frechet_distance",
    "load_digits_classifier",
]


class DigitsClassifier(nn.Module):
    """A small CNN for 8x8 digits in [-1, 1]: conv 32, conv 64, max-pool to 4x4, conv 64,
    global average pool -> 64 features (``embed``) -> linear -> 10 logits (``forward``)."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, self.feature_dim, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(self.feature_dim, 10)

    def embed(self, x: Tensor) -> Tensor:
        """The features of ``(n, 1, 8, 8)`` digit images (the Frechet distance's space), ``(n,
        features)``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(
                f"digits features need images of shape (n, 1, 8, 8), got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of ``(n, 1, 8, 8)`` digit images, ``(n, 10)``."""
        return self.head(self.embed(x))


_CLASSIFIER_FILE = "digits_classifier_v1.safetensors"
_CLASSIFIER_VERSION = "1"
_LOADED: dict[Path, DigitsClassifier] = {}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded for a while. For a model this small one thread is as fast as
    several, and it does not slow down many-fold when the cores are shared with other processes
    (OpenMP threads spinning against each other)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@_one_thread()
def _train_digits_classifier(seed: int, epochs: int) -> tuple[DigitsClassifier, float]:
    """Adam, batch 64, on the train split; returns the model and its test-split accuracy."""
    train, test = DigitsDataset("train"), DigitsDataset("test")
    with torch.random.fork_rng():  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = DigitsClassifier()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(train), generator=g).split(64):
            loss = F.cross_entropy(model(train.images[idx]), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).float().mean().item()
    return model, accuracy


def load_digits_classifier(
    cache: str | Path | None = None, *, retrain: bool = False, seed: int = 0, epochs: int = 20
) -> DigitsClassifier:
    """The cached digits classifier, trained (and cached) on first use; see the module doc.

    The file ``digits_classifier_v1.safetensors`` carries its metadata (version, seed, epochs,
    test accuracy); an unreadable or outdated file is retrained and replaced.
    """
    path = cache_dir(cache) / _CLASSIFIER_FILE
    if not retrain and path in _LOADED:
        return _LOADED[path]
    model = DigitsClassifier()
    loaded = False
    if path.is_file() and not retrain:
        try:
            model.load_state_dict(load_file(path))
            loaded = _read_metadata(path).get("version") == _CLASSIFIER_VERSION
        except (SafetensorError, RuntimeError, OSError) as err:
            warnings.warn(
                f"retraining the digits classifier: cannot read {path} ({err})", stacklevel=2
            )
    if not loaded:
        model, accuracy = _train_digits_classifier(seed, epochs)
        metadata = {
            "version": _CLASSIFIER_VERSION,
            "seed": str(seed),
            "epochs": str(epochs),
            "test_accuracy": f"{accuracy:.4f}",
        }
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    model.eval().requires_grad_(False)
    _LOADED[path] = model
    return model


def _read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def digits_features(
    x: Tensor, *, cache: str | Path | None = None, batch_size: int = 1024
) -> Tensor:
    """The 64 penultimate-layer features ``(n, 64)`` of the cached digits classifier for images
    ``(n, 1, 8, 8)`` in [-1, 1]."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError("digits_features expects a floating torch.Tensor of images")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    model = load_digits_classifier(cache)
    with torch.no_grad():
        return torch.cat([model.embed(b.float().cpu()) for b in x.split(batch_size)])


def digits_frechet_distance(
    samples: Tensor, reference: Tensor, *, cache: str | Path | None = None
) -> float:
    """Frechet distance between two sets of digit images in the digits classifier's features.
    Both sets need more than 64 images for a full-rank covariance (a few hundred are better)."""
    mu1, s1 = gaussian_statistics(digits_features(samples, cache=cache))
    mu2, s2 = gaussian_statistics(digits_features(reference, cache=cache))
    return frechet_distance(mu1, s1, mu2, s2)
