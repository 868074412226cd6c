"""Frechet distances between sample sets in a feature space: digits features offline, FID for
CIFAR-10.

**The Frechet distance** between Gaussians ``N(mu1, S1)`` and ``N(mu2, S2)`` (the squared W2
distance between them) is

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).

Applied to the mean and covariance of features of two sample sets it measures how far apart they
are as seen by the feature extractor.

**Digits (offline).** ``DigitsClassifier`` is a small CNN trained once (seeded, a few seconds on a
CPU) on the train split of ``bezkit.data.digits`` and cached as safetensors in the cache folder
(argument ``cache_dir``, else ``$BEZKIT_CACHE``, else ``~/.cache/bezkit``). Its 64-dimensional
penultimate layer gives ``digits_features``; ``digits_frechet_distance`` is the Frechet distance
in those features.

**FID (CIFAR-10).** None of the maintained FID libraries runs beside torch 2.13 without
torchvision: torch-fidelity and clean-fid need torchvision (and pull another torch), and
torchmetrics' FID uses torch-fidelity's Inception. So bezkit implements the standard FID Inception
network (the pytorch-fid architecture: Inception-v3 with the FID-specific pooling of the TensorFlow
graph) and loads its weights **only from a local file** (``pt_inception-2015-12-05-6726825d.pth``,
the pytorch-fid weights, see ``FID_WEIGHTS_URL``). Images in [-1, 1] are quantised to 8 bits,
resized to 299x299 bilinearly and fed in [-1, 1]; the 2048 pool3 features define the statistics.
The protocol: 50 000 generated samples against the statistics of the 50 000 CIFAR-10 train images.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

from bezkit.training.atomic import atomic_write, sha256_file

__all__ = [
    "FID_WEIGHTS_URL",
    "DigitsClassifier",
    "FIDInceptionV3",
    "cache_dir",
    "cifar10_fid",
    "cifar10_train_statistics",
    "digits_features",
    "digits_frechet_distance",
    "frechet_distance",
    "gaussian_statistics",
    "inception_statistics",
    "load_digits_classifier",
    "load_fid_inception",
]

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_ENV = "BEZKIT_FID_WEIGHTS"
CACHE_ENV = "BEZKIT_CACHE"

Statistics = tuple[np.ndarray, np.ndarray]


# -- the Frechet distance -------------------------------------------------------------------


def frechet_distance(
    mu1: np.ndarray | Tensor,
    sigma1: np.ndarray | Tensor,
    mu2: np.ndarray | Tensor,
    sigma2: np.ndarray | Tensor,
    *,
    eps: float = 1e-6,
    method: Literal["sqrtm", "eigh"] = "sqrtm",
) -> float:
    """``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})`` in float64.

    ``method="sqrtm"`` (the reference, as in pytorch-fid) takes scipy's matrix square root of
    ``S1 S2``; a small imaginary part from round-off is dropped (a large one is an error). If the
    product is singular (fewer samples than dimensions, dead features) ``eps * I`` is added to
    both covariances and the distance between the two regularised Gaussians is returned (the
    offset enters the trace terms too, so identical inputs still give 0).
    ``method="eigh"`` uses ``tr((S1 S2)^{1/2}) = sum sqrt(eig(S1^{1/2} S2 S1^{1/2}))``, the
    same number through symmetric eigendecompositions (about 5x faster at 2048 dimensions).
    """
    m1, m2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {m1.shape}, mu2 {m2.shape}, sigma1 {s1.shape}, "
            f"sigma2 {s2.shape}; expected (d,) means and (d, d) covariances"
        )
    for name, a in (("mu1", m1), ("mu2", m2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
    if method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(s1, s2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrt_product_sqrtm(s1, s2)
        if tr_covmean is None:  # the usual guard: nudge both covariances away from singular
            s1, s2 = s1 + eps * np.eye(d), s2 + eps * np.eye(d)
            tr_covmean = _trace_sqrt_product_sqrtm(s1, s2, guarded=True)
    else:
        raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}")
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def _trace_sqrt_product_sqrtm(
    s1: np.ndarray, s2: np.ndarray, *, guarded: bool = False
) -> float | None:
    """``tr((S1 S2)^{1/2})`` by scipy's sqrtm; None (unless ``guarded``) when sqrtm reports a
    singular product or returns non-finite values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if guarded else "error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(s1 @ s2)
        except (linalg.LinAlgWarning, linalg.LinAlgError):
            return None
    if not np.isfinite(covmean).all():
        if guarded:
            raise ValueError("matrix square root is not finite even after the eps guard")
        return None
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(
                f"matrix square root has a large imaginary part "
                f"({np.max(np.abs(covmean.imag)):.3g}); are the covariances symmetric PSD?"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(s1: np.ndarray, s2: np.ndarray) -> float:
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def gaussian_statistics(features: np.ndarray | Tensor) -> Statistics:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (float64) of ``(n, d)`` features."""
    f = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features)
    f = f.astype(np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (n, d) with n >= 2, got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    return f.mean(axis=0), np.cov(f, rowvar=False)


class _RunningMoments:
    """Mean and covariance accumulated batch by batch in float64 (memory ``O(d^2)``)."""

    def __init__(self) -> None:
        self.n = 0
        self.total: np.ndarray | None = None
        self.outer: np.ndarray | None = None

    def update(self, features: Tensor) -> None:
        f = features.detach().cpu().double().numpy()
        if self.total is None:
            self.total = np.zeros(f.shape[1])
            self.outer = np.zeros((f.shape[1], f.shape[1]))
        self.n += f.shape[0]
        self.total += f.sum(axis=0)
        self.outer += f.T @ f

    def statistics(self) -> Statistics:
        if self.n < 2 or self.total is None or self.outer is None:
            raise ValueError(f"need at least 2 samples for a covariance, got {self.n}")
        mu = self.total / self.n
        sigma = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, sigma


# -- the cache folder -----------------------------------------------------------------------


def cache_dir(path: str | Path | None = None) -> Path:
    """The cache folder: ``path`` if given, else ``$BEZKIT_CACHE``, else ``~/.cache/bezkit``."""
    if path is None:
        path = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bezkit"
    return Path(path).expanduser()


# -- digits: a small classifier as the feature extractor ------------------------------------


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
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(
                f"digits features need images of shape (n, 1, 8, 8), got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
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
    from bezkit.data.digits import DigitsDataset

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
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

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
    from safetensors import safe_open

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


# -- FID: the Inception network of pytorch-fid, weights from a local file ------------------


class _ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3), ReLU: Inception's basic unit."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], **kw: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, bias=False, **kw)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    """The FID graph's 3x3 average pool: padding is not counted in the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _MixedA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], dim=1)  # fmt: skip


class _ReductionB(nn.Module):
    """35x35 -> 17x17: 3x3 stride 2 | 1x1-3x3-3x3 stride 2 | max-pool stride 2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], dim=1)  # fmt: skip


class _MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1), width ``c7`` inside."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = {"padding": (0, 3)}, {"padding": (3, 0)}
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), **row)
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), **col)
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), **col)
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), **row)
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), **col)
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), **row)
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            d = conv(d)
        d = self.branch7x7dbl_5(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], dim=1)


class _ReductionD(nn.Module):
    """17x17 -> 8x8: 1x1-3x3 stride 2 | 1x1-1x7-7x1-3x3 stride 2 | max-pool stride 2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([
            self.branch3x3_2(self.branch3x3_1(x)),
            b7,
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], dim=1)  # fmt: skip


class _MixedE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs. The FID graph pools with an average (padding not
    counted) in the first E block and with a 3x3 max-pool in the last."""

    def __init__(self, cin: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(pooled),
        ], dim=1)  # fmt: skip


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 up to its 2048-dimensional pool3 features.

    Parameter names follow the pytorch-fid weights file, so its state dict loads directly (the
    1008-way classifier ``fc.*`` is not needed for FID and is skipped). ``forward`` takes images
    ``(n, 3, H, W)`` in [-1, 1], resizes them to 299x299 (bilinear, ``align_corners=False``) and
    returns ``(n, 2048)``.
    """

    feature_dim = 2048

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _MixedA(192, pool_features=32)
        self.Mixed_5c = _MixedA(256, pool_features=64)
        self.Mixed_5d = _MixedA(288, pool_features=64)
        self.Mixed_6a = _ReductionB(288)
        self.Mixed_6b = _MixedC(768, c7=128)
        self.Mixed_6c = _MixedC(768, c7=160)
        self.Mixed_6d = _MixedC(768, c7=160)
        self.Mixed_6e = _MixedC(768, c7=192)
        self.Mixed_7a = _ReductionD(768)
        self.Mixed_7b = _MixedE(1280, max_pool=False)
        self.Mixed_7c = _MixedE(2048, max_pool=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FID Inception expects (n, 3, H, W) images, got {tuple(x.shape)}")
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):  # fmt: skip
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _weights_path(weights: str | Path | None) -> Path:
    if weights is None:
        weights = os.environ.get(FID_WEIGHTS_ENV)
    if weights is None:
        raise FileNotFoundError(
            f"no FID Inception weights given: pass inception_weights=PATH or set "
            f"${FID_WEIGHTS_ENV}. Download the file from {FID_WEIGHTS_URL}"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"FID Inception weights not found: {path}. Download "
            f"pt_inception-2015-12-05-6726825d.pth from {FID_WEIGHTS_URL} and pass its path "
            f"(or set ${FID_WEIGHTS_ENV})."
        )
    return path


def load_fid_inception(
    weights: str | Path | None = None, *, device: torch.device | str = "cpu"
) -> FIDInceptionV3:
    """Build ``FIDInceptionV3`` and load the pytorch-fid weights from a local file (never from
    the network). ``weights`` defaults to ``$BEZKIT_FID_WEIGHTS``."""
    path = _weights_path(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
    model = FIDInceptionV3()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} is not the FID Inception weights file: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]} (expected pytorch-fid's pt_inception-2015-12-05)"
        )
    return model.to(device).eval().requires_grad_(False)


def _batches(images: Tensor | Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    if isinstance(images, Tensor):
        yield from images.split(batch_size)
    else:
        yield from images


def inception_statistics(
    images: Tensor | Iterable[Tensor],
    model: FIDInceptionV3,
    *,
    batch_size: int = 200,
    quantize: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, covariance and count of the pool3 features of images ``(n, 3, H, W)`` in [-1, 1]
    (a tensor, or an iterable of such batches so that 50 000 samples need not fit in memory).

    ``quantize`` rounds to the 256 levels of an 8-bit image first, as saving samples to PNG does.
    """
    device = next(model.parameters()).device
    moments = _RunningMoments()
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
) -> Statistics:
    """FID reference statistics of the 50 000 CIFAR-10 train images (no flips), computed once and
    cached as ``cifar10-train-fid-<weights sha256 prefix>.npz`` (arrays ``mu``, ``sigma``)."""
    from bezkit.data.cifar10 import CIFAR10Dataset, uint8_to_unit_range

    weights = _weights_path(inception_weights)
    target = cache_dir(cache) / f"cifar10-train-fid-{_sha256_prefix(weights)}.npz"
    if target.is_file():
        with np.load(target, allow_pickle=False) as stats:
            return stats["mu"], stats["sigma"]
    dataset = CIFAR10Dataset(root, "train", flip=False, verify=verify)
    model = load_fid_inception(weights, device=device)
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
) -> float:
    """FID of generated CIFAR-10 samples (in [-1, 1]) against reference statistics.

    The reference is ``reference_stats`` (a ``(mu, sigma)`` pair or an ``.npz`` file with arrays
    ``mu`` and ``sigma``), else the train-split statistics from ``cifar_root`` (computed once and
    cached, see ``cifar10_train_statistics``). Fewer samples than ``expected_samples`` (the
    standard 50 000) give a warning: FID is biased upwards at small sample sizes.
    """
    weights = _weights_path(inception_weights)
    if reference_stats is None:
        if cifar_root is None:
            raise ValueError("cifar10_fid needs reference_stats or cifar_root (the train split)")
        mu_ref, sigma_ref = cifar10_train_statistics(
            cifar_root, weights, cache=cache, batch_size=batch_size, device=device
        )
    elif isinstance(reference_stats, str | Path):
        with np.load(reference_stats, allow_pickle=False) as stats:
            mu_ref, sigma_ref = stats["mu"], stats["sigma"]
    else:
        mu_ref, sigma_ref = reference_stats
    model = load_fid_inception(weights, device=device)
    mu, sigma, n = inception_statistics(samples, model, batch_size=batch_size)
    if n < expected_samples:
        warnings.warn(
            f"FID from {n} samples; the standard protocol uses {expected_samples} and FID is "
            f"biased upwards at small n, so this number is not comparable to published ones",
            stacklevel=2,
        )
    return frechet_distance(mu, sigma, mu_ref, sigma_ref, method=method)
