"""``bezkit train`` / ``evaluate`` when things go wrong: interrupted runs, resumes that must rebuild
the run exactly, outputs that cannot be written or are taken, changed data, impossible batches."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import bezkit.training.trainer as trainer
from bezkit.cli import main
from bezkit.files.run_dir import RunLock
from bezkit.training import load_checkpoint
from bezkit.training.checkpoint import save_checkpoint

FAST = [
    "--steps",
    "30",
    "--hidden",
    "16",
    "--depth",
    "1",
    "--batch-size",
    "32",
    "--ema-decay",
    "0.5",
]
FAST += ["--quiet"]
EVAL_FAST = ["--n", "100", "--steps", "1", "--m-crossings", "10"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread is fastest


def _stop_at(monkeypatch, stop_step: int) -> None:
    """Make the trainer raise KeyboardInterrupt right after saving the checkpoint of a step."""
    real_save = trainer._save

    def save_then_stop(path, model, opt, ema, step, *args):
        real_save(path, model, opt, ema, step, *args)
        if step == stop_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save", save_then_stop)


def test_a_periodic_checkpoint_resumes_the_same_run_not_the_defaults(tmp_path, monkeypatch, capsys):
    """Issue 11 item 1 and 6: data, coupling, objective and --checkpoint-every all survive."""
    run = [
        "train",
        *FAST,
        "--source",
        "gaussian",
        "--target",
        "spirals",
        "--coupling",
        "minibatch-ot",
        "--time-sampling",
        "ushaped",
        "--checkpoint-every",
        "10",
    ]
    assert main([*run, "--out", str(tmp_path / "whole")]) == 0
    out = str(tmp_path / "cut")
    _stop_at(monkeypatch, 10)
    assert main([*run, "--out", out]) == 130
    capsys.readouterr()
    meta = load_checkpoint(out).metadata  # a periodic checkpoint, as a kill -9 would leave it
    assert meta["step"] == 10
    assert meta["data"] == {"source": "gaussian", "target": "spirals"}
    assert meta["coupling"] == {"name": "minibatch-ot"}
    assert meta["run"]["checkpoint_every"] == 10 and meta["run"]["time_sampling"] == "ushaped"
    # resume, and stop again at 20: the resumed run still saves every 10 steps
    _stop_at(monkeypatch, 20)
    assert main(["train", "--resume", out, "--quiet"]) == 130
    assert load_checkpoint(out).metadata["step"] == 20
    monkeypatch.undo()
    assert main(["train", "--resume", out, "--quiet"]) == 0
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(out)
    assert b.metadata["step"] == 30 and b.metadata["run"] == a.metadata["run"]
    for key in a.tensors:
        if key.startswith(("model.", "ema.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_a_checkpoint_that_does_not_record_its_run_is_refused(tmp_path, capsys, cli_error):
    assert main(["train", *FAST, "--steps", "6", "--out", str(tmp_path / "f")]) == 0
    ckpt = load_checkpoint(tmp_path / "f")
    meta = {k: v for k, v in ckpt.metadata.items() if k not in ("run", "format", "sha256")}
    save_checkpoint(tmp_path / "old", ckpt.tensors, {**meta, "step": 2})
    line = cli_error(["train", "--resume", str(tmp_path / "old")])
    assert "does not record the settings of its run" in line and "start a new run" in line


def test_an_existing_out_with_an_interrupted_run_says_resume(
    tmp_path, monkeypatch, capsys, cli_error
):
    out = str(tmp_path / "cut")
    _stop_at(monkeypatch, 10)
    assert main(["train", *FAST, "--checkpoint-every", "10", "--out", out]) == 130
    capsys.readouterr()
    line = cli_error(["train", *FAST, "--out", out])
    assert "interrupted run (step 10 of 30)" in line and f"--resume {out}" in line


def test_a_second_run_on_the_same_out_is_refused(tmp_path, capsys, cli_error):
    out = tmp_path / "busy"
    with RunLock(out, folder=False):
        line = cli_error(["train", *FAST, "--out", str(out)])
    assert "another 'bezkit train' is using" in line
    assert not (tmp_path / "busy.safetensors").exists()
    assert main(["train", *FAST, "--steps", "2", "--out", str(out)]) == 0  # free again


def test_an_unwritable_out_is_refused_before_training(tmp_path, monkeypatch, capsys, cli_error):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("bezkit.training.train", no_training)
    line = cli_error(["train", *FAST, "--out", "/proc/bezkit/flow"])
    assert "--out" in line and "cannot write" in line
    (tmp_path / "dir.safetensors").mkdir()
    line = cli_error(["train", *FAST, "--out", str(tmp_path / "dir")])
    assert "a folder" in line


def test_a_batch_that_cannot_fit_in_memory_is_refused(tmp_path, cli_error):
    line = cli_error(
        ["train", *FAST, "--batch-size", "10000000", "--coupling", "minibatch-ot",
         "--out", str(tmp_path / "f")],
    )  # fmt: skip
    assert "--batch-size 10000000" in line and "GiB" in line and "smaller --batch-size" in line


def test_a_changed_data_file_is_refused_on_resume_and_by_evaluate(
    tmp_path, monkeypatch, capsys, cli_error
):
    points = tmp_path / "points.npy"
    np.save(points, np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    out = str(tmp_path / "cut")
    _stop_at(monkeypatch, 10)
    argv = ["train", *FAST, "--target", str(points), "--checkpoint-every", "10", "--out", out]
    assert main(argv) == 130
    capsys.readouterr()
    assert len(load_checkpoint(out).metadata["data"]["target_sha256"]) == 64
    assert main(["evaluate", out, *EVAL_FAST]) == 0  # unchanged: fine
    capsys.readouterr()
    np.save(points, np.random.default_rng(1).normal(size=(200, 2)).astype(np.float32))
    line = cli_error(["train", "--resume", out])
    assert "changed since the run started" in line
    line = cli_error(["evaluate", out, *EVAL_FAST])
    assert "changed since" in line and "points.npy" in line


def test_evaluate_out_refuses_special_files_and_follows_links(tmp_path, capsys, cli_error):
    ckpt = str(tmp_path / "f")
    assert main(["train", *FAST, "--steps", "6", "--out", ckpt]) == 0
    line = cli_error(["evaluate", ckpt, *EVAL_FAST, "--out", "/dev/null"])
    assert "not a regular file" in line
    os.mkfifo(tmp_path / "fifo")
    line = cli_error(["evaluate", ckpt, *EVAL_FAST, "--out", str(tmp_path / "fifo")])
    assert "not a regular file" in line
    target = tmp_path / "real.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    assert main(["evaluate", ckpt, *EVAL_FAST, "--out", str(tmp_path / "link.json")]) == 0
    capsys.readouterr()
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads(target.read_text())["checkpoint"] == ckpt


def test_experiment_checks_and_locks_its_out_folder_before_any_work(tmp_path, capsys, cli_error):
    line = cli_error(["experiment", "--quick", "--quiet", "--out", "/proc/bezkit-exp"])
    assert "--out" in line and "cannot write" in line
    with RunLock(tmp_path / "exp", folder=True):
        line = cli_error(["experiment", "--quick", "--quiet", "--out", str(tmp_path / "exp")])
    assert "another experiment is using" in line
