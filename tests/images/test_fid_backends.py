"""FID's two Inception backends: torch-fidelity's (the maintained library, where torchvision
imports) and bezkit's port (the fallback) load the same weights file and give the same features
for the same network input. Runs only where both import (``-m fid_library``); everywhere else the
backend choice and the clear errors are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bezkit.metrics.inception import (
    FIDInceptionV3,
    TorchFidelityInception,
    fid_backend,
    load_bezkit_inception,
    load_fid_inception,
    torch_fidelity_available,
)

library = pytest.mark.skipif(
    not torch_fidelity_available(), reason="needs torchvision and torch-fidelity"
)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights in the pytorch-fid 2015-12-05 file format: every Inception tensor, the
    1008-way ``fc``, BatchNorm running statistics away from (0, 1) so that they matter."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    state = dict(model.state_dict())
    state["fc.weight"] = torch.randn(1008, 2048) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("fid-weights") / "pt_inception-random.pth"
    torch.save(state, path)
    return path


def test_auto_backend_matches_what_imports() -> None:
    expected = "torch-fidelity" if torch_fidelity_available() else "bezkit"
    assert fid_backend("auto") == expected
    assert fid_backend("bezkit") == "bezkit"
    with pytest.raises(ValueError, match="unknown FID backend"):
        fid_backend("clean-fid")  # type: ignore[arg-type]


def test_missing_library_is_a_clear_error() -> None:
    if torch_fidelity_available():
        pytest.skip("torch-fidelity imports here")
    with pytest.raises(ImportError, match="torchvision and torch-fidelity"):
        fid_backend("torch-fidelity")


def test_missing_weights_names_the_option_and_the_file(tmp_path: Path) -> None:
    for backend in ("bezkit", "auto"):
        with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05") as err:
            load_fid_inception(tmp_path / "missing.pth", backend=backend)  # type: ignore[arg-type]
        assert "missing.pth" in str(err.value) and "BEZKIT_FID_WEIGHTS" in str(err.value)


@pytest.mark.fid_library
@library
def test_library_and_port_give_the_same_features(random_weights: Path) -> None:
    """The same 299x299 network input: 8-bit values ``q`` for torch-fidelity, ``(q - 128) / 128``
    (what torch-fidelity feeds its first convolution) for bezkit's port."""
    library_net = TorchFidelityInception(random_weights).net
    port = load_bezkit_inception(random_weights)
    q = torch.randint(0, 256, (3, 3, 299, 299), generator=torch.Generator().manual_seed(0))
    q = q.to(torch.uint8)
    with torch.no_grad():
        out = library_net(q)
        lib = (out[0] if isinstance(out, tuple | list) else out).reshape(3, -1).float()
        ours = port((q.float() - 128.0) / 128.0)
    assert lib.shape == ours.shape == (3, 2048)
    assert ours.abs().mean() > 1e-3  # features are alive
    rel = float((lib.double() - ours.double()).norm() / ours.double().norm())
    assert rel < 1e-4, rel


@pytest.mark.fid_library
@library
def test_library_backend_is_chosen_and_runs_on_images(random_weights: Path) -> None:
    model = load_fid_inception(random_weights, backend="auto")
    assert isinstance(model, TorchFidelityInception)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        features = model(x)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
