"""The torchcfm benchmark's training settings: selection by validation loss, the torchcfm network
shape (width 64, SELU, raw t), constant lr without clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bezkit.couplings import IndependentCoupling
from bezkit.data import get_sampler
from bezkit.methods import new_mlp, train_flow
from bezkit.methods.bdense import branched_from_teacher
from bezkit.models.factory import build_model, model_spec
from bezkit.models.mlp import MODEL_SHAPES, MLPVelocity
from bezkit.training import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def _config(steps: int, **kw) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=16,
        schedule="constant",
        grad_clip=None,
        weight_decay=1e-5,
        progress=False,
        device="cpu",
        **kw,
    )


def _coupling() -> IndependentCoupling:
    return IndependentCoupling(get_sampler("gaussian"), get_sampler("torchcfm-moons"))


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_best_validation_loss_selects_those_weights():
    scripted = iter([3.0, 1.0, 2.0, 1.0])  # lowest first at the 2nd validation (step 4)
    model = new_mlp(2, hidden=8, depth=2, seed=0)
    result = train_flow(
        model, _coupling(), _config(8, val_every=2), validation=lambda m: next(scripted)
    )
    assert result.best_step == 4
    assert result.val_losses == [[2, 3.0], [4, 1.0], [6, 2.0], [8, 1.0]]
    # the same run stopped at step 4 has exactly those weights (constant lr: same first 4 steps)
    short = new_mlp(2, hidden=8, depth=2, seed=0)
    train_flow(short, _coupling(), _config(4))
    assert result.best_model is not None
    for a, b in zip(_params(result.best_model), _params(short), strict=True):
        assert torch.equal(a, b)
    # the model to sample with is still the last one
    assert not all(
        torch.equal(a, b) for a, b in zip(_params(result.model), _params(short), strict=True)
    )


def test_validation_and_val_every_go_together():
    with pytest.raises(ValueError, match="go together"):
        train_flow(new_mlp(2, hidden=8, depth=1), _coupling(), _config(2, val_every=1))
    with pytest.raises(ValueError, match="go together"):
        train_flow(new_mlp(2, hidden=8, depth=1), _coupling(), _config(2), validation=lambda m: 0.0)
    with pytest.raises(ValueError, match="val_every"):
        _config(2, val_every=-1)


def test_validation_record_survives_a_resume(tmp_path):
    def val(m: nn.Module) -> float:  # a real held-out loss, deterministic
        x = torch.linspace(-1, 1, 32).reshape(16, 2)
        return float(m(x, torch.full((16,), 0.5)).pow(2).mean())

    full = train_flow(
        new_mlp(2, hidden=8, depth=2), _coupling(), _config(6, val_every=2), validation=val
    )
    ckpt = str(tmp_path / "run")
    part = new_mlp(2, hidden=8, depth=2)
    train_flow(
        part,
        _coupling(),
        _config(4, val_every=2, checkpoint_path=ckpt, checkpoint_every=4),
        validation=val,
    )
    resumed = train_flow(
        new_mlp(2, hidden=8, depth=2),
        _coupling(),
        _config(6, val_every=2, checkpoint_path=ckpt, checkpoint_every=2),
        validation=val,
        resume_from=ckpt,
    )
    assert resumed.val_losses == full.val_losses
    assert resumed.best_step == full.best_step
    assert resumed.best_model is not None and full.best_model is not None
    for a, b in zip(_params(resumed.best_model), _params(full.best_model), strict=True):
        assert torch.equal(a, b)


def test_torchcfm_shape_width_64_selu_raw_t():
    shape = MODEL_SHAPES["torchcfm"]
    model = MLPVelocity(2, **shape)  # type: ignore[arg-type]
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [lin.in_features for lin in linears] == [3, 64, 64, 64]
    assert sum(isinstance(m, nn.SELU) for m in model.net) == 3
    assert not any(isinstance(m, nn.SiLU) for m in model.net)
    # raw t: the first layer sees t itself, so v(x, t) is the network of [x, t]
    x, t = torch.randn(5, 2), torch.rand(5)
    torch.testing.assert_close(model(x, t), model.net(torch.cat([x, t[:, None]], dim=1)))
    rebuilt = build_model(model_spec(model))
    assert model_spec(rebuilt) == model_spec(model)
    assert model_spec(model)["config"]["activation"] == "selu"


def test_default_spec_unchanged():
    assert set(model_spec(MLPVelocity(2))["config"]) == {
        "dim",
        "hidden",
        "depth",
        "time_dim",
        "out_dim",
    }
    with pytest.raises(ValueError, match="unknown activation"):
        MLPVelocity(2, activation="relu6")


def test_bdense_student_of_a_torchcfm_teacher_keeps_its_shape():
    teacher = MLPVelocity(2, **MODEL_SHAPES["torchcfm"])  # type: ignore[arg-type]
    student = branched_from_teacher(teacher, 2)
    x, t = torch.randn(4, 2), torch.rand(4)
    # every branch starts as the teacher: same activation, same raw-t input
    torch.testing.assert_close(student.net(x, t)[:, :2], teacher(x, t))
    torch.testing.assert_close(student.net(x, t)[:, 2:], teacher(x, t))
