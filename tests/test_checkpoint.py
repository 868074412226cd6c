"""Checkpoints: one safetensors file carrying its metadata (a JSON copy beside it), round trip,
SHA-256 over tensors and metadata, no silent overwrite, atomic commit, legacy format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import bezkit.files.atomic as atomic_module
import bezkit.training.checkpoint as checkpoint_module
from bezkit.files.run_dir import RunLock
from bezkit.models import MLPVelocity
from bezkit.models.factory import build_model, model_spec
from bezkit.training import CheckpointError, load_checkpoint, save_checkpoint
from bezkit.training.checkpoint import FORMAT, LEGACY_FORMAT, content_digest, sha256_file

pytestmark = pytest.mark.usefixtures("single_thread")


def model_tensors(seed=0):
    torch.manual_seed(seed)
    model = MLPVelocity(2, hidden=8, depth=1, time_dim=4)
    return model, {f"model.{k}": v for k, v in model.state_dict().items()}


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_round_trip(tmp_path):
    model, tensors = model_tensors()
    tensors["ema.extra"] = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    meta = {"model": model_spec(model), "step": 7, "losses": [0.5, 0.25], "note": "é"}
    st = save_checkpoint(tmp_path / "ckpt", tensors, meta)
    assert st == tmp_path / "ckpt.safetensors"
    assert files(tmp_path) == ["ckpt.json", "ckpt.safetensors"]
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.tensors.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(ckpt.tensors[k], v) and ckpt.tensors[k].dtype == v.dtype
    for key, value in meta.items():
        assert ckpt.metadata[key] == value
    assert ckpt.metadata["format"] == FORMAT
    assert ckpt.metadata["sha256"] == content_digest(tensors, ckpt.metadata)
    # the JSON beside it is an exact copy of the metadata in the tensor file's header
    assert json.loads((tmp_path / "ckpt.json").read_text()) == ckpt.metadata
    assert set(ckpt.metadata["versions"]) >= {"bezkit", "torch"}
    # sections and the model state rebuild the model exactly
    assert torch.equal(ckpt.section("ema")["extra"], tensors["ema.extra"])
    rebuilt = build_model(ckpt.metadata["model"])
    rebuilt.load_state_dict(ckpt.model_state)
    x, t = torch.randn(5, 2), torch.rand(5)
    assert torch.equal(rebuilt(x, t), model(x, t))
    # either file name, or the stem, names the same checkpoint
    assert load_checkpoint(tmp_path / "ckpt.json").metadata == ckpt.metadata
    assert load_checkpoint(st).metadata == ckpt.metadata


def test_dotted_names_keep_their_suffix(tmp_path):
    _, tensors = model_tensors()
    st = save_checkpoint(tmp_path / "run_0.5", tensors, {})
    assert st.name == "run_0.5.safetensors"
    save_checkpoint(tmp_path / "run_0.7", tensors, {})  # does not collide with run_0.5
    assert files(tmp_path) == sorted(
        ["run_0.5.json", "run_0.5.safetensors", "run_0.7.json", "run_0.7.safetensors"]
    )


@pytest.mark.parametrize("where", [0.1, 0.5, 0.99])
def test_altered_tensor_file_is_refused(tmp_path, where):
    _, tensors = model_tensors()
    st = save_checkpoint(tmp_path / "ckpt", tensors, {})
    data = bytearray(st.read_bytes())
    data[int(where * (len(data) - 1))] ^= 0x01  # flip one bit
    st.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="was altered"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_hand_edited_json_copy_is_refused_and_a_corrupt_one_too(tmp_path):
    _, tensors = model_tensors()
    save_checkpoint(tmp_path / "ckpt", tensors, {"step": 3})
    js = tmp_path / "ckpt.json"
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({**meta, "step": 4}))
    with pytest.raises(CheckpointError, match=r"edited by hand \(step differ"):
        load_checkpoint(tmp_path / "ckpt")
    js.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "ckpt")
    js.unlink()  # the copy is not needed: the header holds the metadata
    assert load_checkpoint(tmp_path / "ckpt").metadata["step"] == 3


def test_metadata_edited_inside_the_tensor_file_is_refused(tmp_path):
    _, tensors = model_tensors()
    st = save_checkpoint(tmp_path / "ckpt", tensors, {"step": 30})
    data = st.read_bytes()
    old, new = b'\\"step\\":30', b'\\"step\\":31'  # as escaped inside the header's JSON
    assert data.count(old) == 1
    st.write_bytes(data.replace(old, new))  # same length: still a valid safetensors file
    # the copy no longer agrees, and the digest says which one changed: the header (issue 17)
    with pytest.raises(CheckpointError, match=r"ckpt\.safetensors is damaged or was altered"):
        load_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt.json").unlink()
    assert load_checkpoint(tmp_path / "ckpt", verify=False).metadata["step"] == 31
    with pytest.raises(CheckpointError, match="was altered"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_stale_json_copy_from_a_kill_between_the_writes_is_ignored(tmp_path):
    """A kill after the tensor file's commit and before the JSON copy leaves an old copy: the
    checkpoint (the tensor file) is the new one and loads; the next save rewrites the copy."""
    _, first = model_tensors(0)
    _, second = model_tensors(1)
    save_checkpoint(tmp_path / "ckpt", first, {"which": "first"})
    old_copy = (tmp_path / "ckpt.json").read_bytes()
    save_checkpoint(tmp_path / "ckpt", second, {"which": "second"}, overwrite=True)
    (tmp_path / "ckpt.json").write_bytes(old_copy)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.metadata["which"] == "second"
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in second.items())


def test_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    (tmp_path / "plain.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not a bezkit checkpoint"):
        load_checkpoint(tmp_path / "plain")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="damaged or was altered"):
        load_checkpoint(tmp_path / "junk")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(tmp_path / "dir")


def test_first_format_checkpoints_still_load_and_are_verified(tmp_path):
    from safetensors.torch import save_file

    _, tensors = model_tensors()
    st = tmp_path / "old.safetensors"
    save_file(tensors, str(st))
    meta = {"format": LEGACY_FORMAT, "sha256": sha256_file(st), "step": 5}
    (tmp_path / "old.json").write_text(json.dumps(meta))
    ckpt = load_checkpoint(tmp_path / "old")
    assert ckpt.metadata["step"] == 5
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in tensors.items())
    (tmp_path / "old.json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="was altered"):
        load_checkpoint(tmp_path / "old")


def test_checkpoints_are_byte_reproducible(tmp_path, monkeypatch):
    _, tensors = model_tensors()
    meta = {"step": 1, "a": {"z": 1, "b": 2, "m": [1, 2]}, "c": "x", "versions": {"v": "1"}}
    a = save_checkpoint(tmp_path / "a", tensors, meta)
    b = save_checkpoint(
        tmp_path / "b", dict(reversed(tensors.items())), dict(reversed(meta.items()))
    )
    assert a.read_bytes() == b.read_bytes()


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "nothing")


def test_existing_checkpoint_is_not_overwritten(tmp_path):
    _, first = model_tensors(0)
    _, second = model_tensors(1)
    save_checkpoint(tmp_path / "ckpt", first, {"which": "first"})
    before = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(tmp_path / "ckpt", second, {"which": "second"})
    assert {name: (tmp_path / name).read_bytes() for name in files(tmp_path)} == before
    save_checkpoint(tmp_path / "ckpt", second, {"which": "second"}, overwrite=True)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.metadata["which"] == "second"
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in second.items())
    assert files(tmp_path) == ["ckpt.json", "ckpt.safetensors"]  # no temporary files left


def test_a_failed_json_copy_write_leaves_no_temp_file_and_the_new_checkpoint(tmp_path, monkeypatch):
    _, first = model_tensors(0)
    _, second = model_tensors(1)
    save_checkpoint(tmp_path / "ckpt", first, {"which": "first"})
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ckpt", second, {"which": "second"}, overwrite=True)
    monkeypatch.undo()
    assert files(tmp_path) == ["ckpt.json", "ckpt.safetensors"]  # temporary files removed
    # the old JSON copy is intact but stale; the checkpoint itself is the new one, whole
    assert json.loads((tmp_path / "ckpt.json").read_text())["which"] == "first"
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.metadata["which"] == "second"
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in second.items())


def test_temp_files_of_a_killed_write_are_removed_by_the_next_save_of_the_owner(tmp_path):
    _, tensors = model_tensors()
    (tmp_path / ".ckpt.safetensors.x1y2.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".ckpt.json.x1y2.tmp").write_bytes(b"{")
    save_checkpoint(tmp_path / "ckpt", tensors, {})  # no lock held: not ours to remove
    assert ".ckpt.safetensors.x1y2.tmp" in files(tmp_path)
    with RunLock(tmp_path / "ckpt", folder=False, what="training run"):  # as bezkit train holds it
        save_checkpoint(tmp_path / "ckpt", tensors, {}, overwrite=True)
    assert files(tmp_path) == [
        "ckpt.json",
        "ckpt.safetensors",
    ]  # the released lock removed its file


def test_the_in_flight_temp_file_of_another_process_is_not_removed(tmp_path):
    """A second process writes the same checkpoint under its own lock; a save here (which does
    not own the checkpoint) must leave that process's temporary file alone."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from bezkit.files.atomic import atomic_write
        from bezkit.files.run_dir import RunLock

        def write(tmp):
            Path(tmp).write_bytes(b"being written")
            Path({str(ready)!r}).write_text(tmp)
            while not Path({str(go)!r}).exists():
                time.sleep(0.01)

        with RunLock({str(tmp_path / "ckpt")!r}, folder=False, what="training run"):
            atomic_write({str(tmp_path / "ckpt.safetensors")!r}, write)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        in_flight = Path(ready.read_text())
        assert in_flight.exists() and in_flight.name.startswith(".ckpt.safetensors.")
        _, tensors = model_tensors()
        save_checkpoint(tmp_path / "ckpt", tensors, {}, overwrite=True)
        assert in_flight.read_bytes() == b"being written"
        go.write_text("")
        assert proc.wait(timeout=60) == 0
    finally:
        go.write_text("")
        if proc.poll() is None:
            proc.kill()
    assert not in_flight.exists()  # its writer moved it into place


def test_a_failed_tensor_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    _, first = model_tensors(0)
    _, second = model_tensors(1)
    save_checkpoint(tmp_path / "ckpt", first, {"which": "first"})

    def failing_save(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("killed mid-write")

    monkeypatch.setattr(checkpoint_module, "save_file", failing_save)
    with pytest.raises(OSError, match="killed mid-write"):
        save_checkpoint(tmp_path / "ckpt", second, {"which": "second"}, overwrite=True)
    monkeypatch.undo()
    assert files(tmp_path) == ["ckpt.json", "ckpt.safetensors"]
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.metadata["which"] == "first"
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in first.items())


def test_trainer_checkpoint_layout(tmp_path):
    from bezkit.couplings import IndependentCoupling
    from bezkit.data import get_sampler
    from bezkit.training import FlowMatchingLoss, TrainConfig, train

    model, _ = model_tensors()
    config = TrainConfig(
        steps=6,
        batch_size=16,
        seed=0,
        device="cpu",
        progress=False,
        ema_decay=0.9,
        checkpoint_path=str(tmp_path / "run"),
        checkpoint_every=4,
    )
    coupling = IndependentCoupling(get_sampler("gaussian"), get_sampler("moons"))
    res = train(model, FlowMatchingLoss(), coupling.sample, config)
    assert files(tmp_path) == ["run.json", "run.safetensors"]
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.metadata["step"] == 6  # the final step is always saved
    assert ckpt.metadata["losses"] == res.losses
    assert ckpt.metadata["model"] == model_spec(model)
    assert ckpt.metadata["train_config"]["steps"] == 6
    for k, v in res.raw_model.state_dict().items():
        assert torch.equal(ckpt.model_state[k], v)
    for k, v in res.ema_model.state_dict().items():
        assert torch.equal(ckpt.section("ema")[k], v)
    assert ckpt.section("optimizer")  # optimizer moments are saved for resuming
