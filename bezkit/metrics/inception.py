"""The FID Inception-v3 network: the maintained library's where torchvision imports, bezkit's
own port where it cannot.

FID is defined by one network, the Inception-v3 of the TensorFlow graph ``2015-12-05`` with its
FID-specific pooling; pytorch-fid and torch-fidelity (which torchmetrics' FID uses) ship it as the
same PyTorch state dict (``pt_inception-2015-12-05-6726825d.pth`` / ``weights-inception-2015-12-05-
6726825d.pth``). bezkit never downloads it: the file is given as ``weights`` or
``$BEZKIT_FID_WEIGHTS``.

``load_fid_inception(weights, backend="auto")`` returns a module mapping images ``(n, 3, H, W)``
in [-1, 1] to their 2048 pool3 features:

- ``"torch-fidelity"``: torch-fidelity's ``FeatureExtractorInceptionV3`` (through torchmetrics'
  ``NoTrainInceptionV3`` when torchmetrics is installed), the anchors' choice: images are turned
  into 8-bit values ``q`` and the library resizes them to 299x299 exactly as TensorFlow 1 did and
  feeds ``(q - 128) / 128``. It needs torchvision.
- ``"bezkit"``: ``FIDInceptionV3``, bezkit's port of the same network (the pytorch-fid
  architecture): resized by ``F.interpolate`` (bilinear) and fed ``q / 127.5 - 1`` (pytorch-fid's
  convention). It runs wherever torch does (this is the fallback for a torch without a matching
  torchvision).
- ``"auto"``: torch-fidelity when ``torchvision`` and torch-fidelity import, else bezkit's port.

With the same weights file both give the same features for the same 299x299 network input (a
test checks it where both import); FIDs computed by the two differ slightly because of the
resize and the input scaling above, so compare FIDs from one backend only (it is recorded).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FID_WEIGHTS_ENV",
    "FID_WEIGHTS_URL",
    "Backend",
    "FIDInceptionV3",
    "TorchFidelityInception",
    "fid_backend",
    "fid_weights_path",
    "load_bezkit_inception",
    "load_fid_inception",
    "torch_fidelity_available",
    "write_random_fid_weights",
]

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_ENV = "BEZKIT_FID_WEIGHTS"
Backend = Literal["auto", "torch-fidelity", "bezkit"]
BACKENDS = ("auto", "torch-fidelity", "bezkit")


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
        """The 2048 pool features of ``(n, 3, H, W)`` images in ``[-1, 1]``, resized to 299 x 299."""
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


def write_random_fid_weights(path: str | Path, *, seed: int = 0) -> Path:
    """Seeded random weights in the pytorch-fid file format, for tests and GPU code-path checks
    where the real ones cannot be downloaded: He-initialised convolutions (so features do not
    vanish) and the file's 1008-way ``fc``, which the loader skips. Not a measure of anything."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FIDInceptionV3()
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    state = dict(model.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, path)
    return Path(path)


def fid_weights_path(weights: str | Path | None) -> Path:
    """The FID Inception weights file: ``weights``, else ``$BEZKIT_FID_WEIGHTS``; a missing file
    is a ``FileNotFoundError`` that names the option and the file to download."""
    how = (
        f"download pt_inception-2015-12-05-6726825d.pth from {FID_WEIGHTS_URL} (bezkit never "
        f"downloads it) and pass its path: --fid-weights FILE on the command line, "
        f"inception_weights=FILE in Python, or ${FID_WEIGHTS_ENV}=FILE"
    )
    if weights is None:
        weights = os.environ.get(FID_WEIGHTS_ENV)
    if weights is None:
        raise FileNotFoundError(f"no FID Inception weights given: {how}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"FID Inception weights not found: {path}; {how}")
    return path


def load_bezkit_inception(
    weights: str | Path | None = None, *, device: torch.device | str = "cpu"
) -> FIDInceptionV3:
    """Build bezkit's ``FIDInceptionV3`` and load the pytorch-fid weights from a local file (never
    from the network). ``weights`` defaults to ``$BEZKIT_FID_WEIGHTS``."""
    path = fid_weights_path(weights)
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


def torch_fidelity_available() -> bool:
    """Whether torch-fidelity's Inception can run here: torchvision and torch-fidelity import
    (a torchvision built for another torch fails to import: then only bezkit's port runs)."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return False
    try:
        import torchvision  # noqa: F401  (heavy optional dependency, checked lazily)
        from torch_fidelity.feature_extractor_inceptionv3 import (  # noqa: F401  (optional: fid extra)
            FeatureExtractorInceptionV3,
        )
    except Exception:  # any import failure (ABI mismatch, missing ops) means: not usable
        return False
    return True


def fid_backend(backend: Backend = "auto") -> str:
    """The backend ``load_fid_inception`` uses: ``"torch-fidelity"`` or ``"bezkit"``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown FID backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "auto":
        return "torch-fidelity" if torch_fidelity_available() else "bezkit"
    if backend == "torch-fidelity" and not torch_fidelity_available():
        raise ImportError(
            "the torch-fidelity FID backend needs torchvision and torch-fidelity "
            "(pip install 'bezkit[fid]'); use backend='bezkit' for bezkit's own port"
        )
    return backend


class TorchFidelityInception(nn.Module):
    """torch-fidelity's FID Inception (torchmetrics' ``NoTrainInceptionV3`` when available) with
    bezkit's calling convention: images ``(n, 3, H, W)`` in [-1, 1] -> ``(n, 2048)`` features.
    Images are rounded to 8-bit values ``q = round((x + 1) * 127.5)`` (what saving a PNG does),
    the library's own input."""

    feature_dim = 2048

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        try:
            from torchmetrics.image.fid import (
                NoTrainInceptionV3 as Extractor,
            )  # optional: fid extra
        except ImportError:
            from torch_fidelity.feature_extractor_inceptionv3 import (  # optional: fid extra
                FeatureExtractorInceptionV3 as Extractor,
            )
        self.net = Extractor(
            name="inception-v3-compat",
            features_list=[str(self.feature_dim)],
            feature_extractor_weights_path=str(weights),
        )
        self.net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> TorchFidelityInception:
        """Stays in evaluation mode (BatchNorm uses the file's statistics)."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(n, 2048)`` of images in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FID Inception expects (n, 3, H, W) images, got {tuple(x.shape)}")
        q = torch.round((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)
        out = self.net(q)
        features = out[0] if isinstance(out, tuple | list) else out
        return features.reshape(x.shape[0], -1).float()


def load_fid_inception(
    weights: str | Path | None = None,
    *,
    device: torch.device | str = "cpu",
    backend: Backend = "auto",
) -> nn.Module:
    """The FID Inception network with the weights file ``weights`` (default
    ``$BEZKIT_FID_WEIGHTS``; never downloaded), in eval mode on ``device``: torch-fidelity's where
    torchvision imports, else bezkit's ``FIDInceptionV3`` (see the module doc)."""
    path = fid_weights_path(weights)
    if fid_backend(backend) == "bezkit":
        return load_bezkit_inception(path, device=device)
    try:
        model = TorchFidelityInception(path)
    except RuntimeError as err:  # a state dict with other keys or shapes
        raise ValueError(
            f"{path} is not the FID Inception weights file ({err}); expected pytorch-fid's "
            f"pt_inception-2015-12-05 (download: {FID_WEIGHTS_URL})"
        ) from None
    return model.to(device).eval()
