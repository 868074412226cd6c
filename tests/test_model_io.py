"""bezkit.training.model_io: save a model with metadata, load it back from any bezkit checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from bezkit.couplings import IndependentCoupling
from bezkit.data import get_sampler
from bezkit.models import BranchedVelocity, MLPVelocity
from bezkit.models.factory import model_spec
from bezkit.training import CheckpointError, FlowMatchingLoss, TrainConfig, load_checkpoint, train
from bezkit.training.checkpoint import save_checkpoint
from bezkit.training.ema import EMA
from bezkit.training.model_io import (
    checkpoint_files,
    load_model,
    model_tensors,
    save_model,
    update_metadata,
)


def _mlp(seed: int = 0, **kwargs) -> MLPVelocity:
    torch.manual_seed(seed)
    return MLPVelocity(2, hidden=16, depth=2, **kwargs)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_with_and_without_ema(tmp_path):
    model, ema_model = _mlp(0), _mlp(1)
    path = save_model(tmp_path / "m", model, {"note": "hi"}, ema=ema_model)
    assert path == tmp_path / "m.safetensors" and (tmp_path / "m.json").is_file()

    loaded, meta = load_model(tmp_path / "m")
    assert _same_weights(loaded, ema_model) and meta["loaded_weights"] == "ema"
    assert meta["note"] == "hi" and meta["model"]["class"] == "MLPVelocity"
    assert not loaded.training

    loaded, meta = load_model(tmp_path / "m.json", use_ema=False)
    assert _same_weights(loaded, model) and meta["loaded_weights"] == "model"
    x, t = torch.randn(5, 2), torch.rand(5)
    assert torch.equal(loaded(x, t), model.eval()(x, t))


def test_without_ema_loads_trained_weights(tmp_path):
    model = _mlp(0)
    save_model(tmp_path / "m", model, {})
    loaded, meta = load_model(tmp_path / "m", use_ema=True)
    assert _same_weights(loaded, model) and meta["loaded_weights"] == "model"


def test_accepts_an_ema_object_and_checks_its_shape():
    model = _mlp(0)
    ema = EMA(model, 0.9)
    tensors = model_tensors(model, ema)
    assert {k for k in tensors if k.startswith("ema.")} == {"ema." + k for k in model.state_dict()}
    with pytest.raises(ValueError, match="same parameters"):
        model_tensors(model, MLPVelocity(2, hidden=8, depth=2))


def test_branched_model_round_trip(tmp_path):
    torch.manual_seed(0)
    model = BranchedVelocity(MLPVelocity(2, hidden=8, depth=1, out_dim=6), 3)
    save_model(tmp_path / "b", model, {})
    loaded, _ = load_model(tmp_path / "b")
    assert isinstance(loaded, BranchedVelocity) and loaded.times == model.times
    assert _same_weights(loaded, model)


def test_refuses_overwrite_reserved_keys_and_wrong_spec(tmp_path):
    model = _mlp()
    save_model(tmp_path / "m", model, {})
    with pytest.raises(FileExistsError):
        save_model(tmp_path / "m", model, {})
    save_model(tmp_path / "m", model, {"a": 1}, overwrite=True)
    assert load_model(tmp_path / "m")[1]["a"] == 1
    for key in ("format", "sha256", "versions"):
        with pytest.raises(ValueError, match="reserved"):
            save_model(tmp_path / "x", model, {key: 1})
    with pytest.raises(ValueError, match="does not describe"):
        save_model(tmp_path / "x", model, {"model": {"class": "MLPVelocity", "config": {}}})


def test_loads_a_trainer_checkpoint(tmp_path):
    model = _mlp()
    coupling = IndependentCoupling(get_sampler("gaussian"), get_sampler("moons"))
    config = TrainConfig(
        steps=3,
        batch_size=16,
        ema_decay=0.5,
        progress=False,
        checkpoint_path=str(tmp_path / "run"),
        checkpoint_every=3,
    )
    result = train(model, FlowMatchingLoss(), coupling.sample, config)
    loaded, meta = load_model(tmp_path / "run")
    assert meta["step"] == 3 and meta["loaded_weights"] == "ema"
    assert _same_weights(loaded, result.ema_model)
    assert _same_weights(load_model(tmp_path / "run", use_ema=False)[0], result.raw_model.cpu())


def test_missing_altered_and_inconsistent_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope")
    save_model(tmp_path / "m", _mlp(), {})
    st, _ = checkpoint_files(tmp_path / "m")
    data = bytearray(st.read_bytes())
    data[-2] ^= 0xFF
    st.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="altered"):
        load_model(tmp_path / "m")

    # metadata edited by hand in the JSON copy is refused (the header holds the real metadata)
    save_model(tmp_path / "w", _mlp(), {})
    meta = json.loads((tmp_path / "w.json").read_text())
    meta["model"]["config"]["hidden"] = 32
    (tmp_path / "w.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="edited by hand"):
        load_model(tmp_path / "w")

    # a (validly written) checkpoint whose spec does not describe its weights
    tensors = model_tensors(_mlp())
    spec = model_spec(_mlp())
    spec["config"]["hidden"] = 32
    save_checkpoint(tmp_path / "x", tensors, {"model": spec})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "x")
    save_checkpoint(
        tmp_path / "x", tensors, {"model": {"class": "Evil", "config": {}}}, overwrite=True
    )
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_model(tmp_path / "x")
    save_checkpoint(tmp_path / "x", tensors, {}, overwrite=True)
    with pytest.raises(CheckpointError, match="no model spec"):
        load_model(tmp_path / "x")


def test_update_metadata_keeps_the_hash_valid(tmp_path):
    model = _mlp()
    save_model(tmp_path / "m", model, {"a": 1})
    new = update_metadata(tmp_path / "m", {"b": {"c": 2}})
    assert new["a"] == 1 and new["b"] == {"c": 2}
    loaded, meta = load_model(tmp_path / "m")  # verifies the SHA-256
    assert meta["b"] == {"c": 2} and _same_weights(loaded, model)
    assert load_checkpoint(tmp_path / "m").metadata["b"] == {"c": 2}
    with pytest.raises(ValueError, match="reserved"):
        update_metadata(tmp_path / "m", {"sha256": "0"})
    with pytest.raises(FileNotFoundError):
        update_metadata(tmp_path / "nope", {"b": 1})


def test_checkpoint_files_append_the_suffix(tmp_path):
    assert checkpoint_files("runs/flow") == (
        checkpoint_files("runs/flow.safetensors")[0],
        checkpoint_files("runs/flow.json")[1],
    )
    st, js = checkpoint_files("run_0.5")  # a dot in the name is not a suffix to replace
    assert (st.name, js.name) == ("run_0.5.safetensors", "run_0.5.json")
    save_model(tmp_path / "lr_1e-3.v2", _mlp(), {})
    assert (tmp_path / "lr_1e-3.v2.safetensors").is_file()
    assert load_model(tmp_path / "lr_1e-3.v2")[1]["loaded_weights"] == "model"
