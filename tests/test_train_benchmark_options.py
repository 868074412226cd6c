"""``bezkit train``'s options for the torchcfm benchmark's settings: --sigma, --model-shape,
--lr-schedule, --weight-decay, --grad-clip, --val-every (and ``evaluate --weights best``)."""

from __future__ import annotations

import json

import pytest
import torch

from bezkit.cli import main
from bezkit.cli.train import LATER_SETTINGS
from bezkit.training import load_checkpoint
from bezkit.training.model_io import update_metadata

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = ["--steps", "10", "--batch-size", "32", "--quiet"]


def _model_tensors(path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_checkpoint(path).tensors.items() if k.startswith("model.")}


def test_sigma_zero_gives_todays_checkpoint(tmp_path):
    tiny = ["--hidden", "16", "--depth", "1", *SMALL]
    assert main(["train", *tiny, "--out", str(tmp_path / "a")]) == 0
    assert main(["train", *tiny, "--sigma", "0", "--out", str(tmp_path / "b")]) == 0
    a, b = _model_tensors(tmp_path / "a"), _model_tensors(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["train", *tiny, "--sigma", "0.1", "--out", str(tmp_path / "c")]) == 0
    c = _model_tensors(tmp_path / "c")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_benchmark_settings_reach_the_run(tmp_path, capsys):
    out = tmp_path / "otcfm"
    argv = [
        "train",
        "--source",
        "gaussian",
        "--target",
        "torchcfm-moons",
        "--coupling",
        "minibatch-ot",
        "--sigma",
        "0.1",
        "--model-shape",
        "torchcfm",
        "--lr-schedule",
        "constant",
        "--grad-clip",
        "0",
        "--weight-decay",
        "1e-5",
        "--ema-decay",
        "0",
        "--val-every",
        "4",
        "--val-points",
        "64",
        *SMALL,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    meta = load_checkpoint(out).metadata
    tc = meta["train_config"]
    assert tc["schedule"] == "constant" and tc["grad_clip"] is None
    assert tc["weight_decay"] == 1e-5 and tc["val_every"] == 4 and tc["ema_decay"] is None
    cfg = meta["model"]["config"]
    assert (cfg["hidden"], cfg["depth"], cfg["activation"], cfg["time_input"]) == (
        64,
        3,
        "selu",
        "raw",
    )
    assert meta["objective"]["sigma"] == 0.1
    assert [step for step, _ in meta["val_losses"]] == [4, 8, 10]
    assert meta["best_step"] in (4, 8, 10)
    assert meta["best_val_loss"] == min(loss for _, loss in meta["val_losses"])
    capsys.readouterr()
    assert main(["evaluate", str(out), "--weights", "best", "--n", "50", "--steps", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == "best"


def test_bad_benchmark_options(tmp_path, cli_error):
    out = ["--out", str(tmp_path / "x")]
    assert "--hidden" in cli_error(["train", "--model-shape", "torchcfm", "--hidden", "32", *out])
    assert "--target-kind tangent" in cli_error(
        ["train", "--sigma", "0.1", "--target-kind", "endpoint", *out]
    )
    assert "--sigma" in cli_error(["train", "--sigma", "-1", *out])


def test_best_weights_need_validation(tmp_path, cli_error):
    path = tmp_path / "plain"
    argv = ["train", "--hidden", "8", "--depth", "1", "--ema-decay", "0", *SMALL]
    assert main([*argv, "--out", str(path)]) == 0
    assert "--val-every" in cli_error(["evaluate", str(path), "--weights", "best"])


def test_a_checkpoint_from_before_these_options_resumes(tmp_path, cli_error):
    path = tmp_path / "old"
    tiny = ["--hidden", "8", "--depth", "1", "--ema-decay", "0", "--quiet"]
    assert main(["train", *tiny, "--steps", "4", "--batch-size", "16", "--out", str(path)]) == 0
    run = dict(load_checkpoint(path).metadata["run"])
    for name in LATER_SETTINGS:  # what a checkpoint of bezkit 0.2.0 records
        del run[name]
    update_metadata(path, {"run": run})
    assert "not a setting of the resumed run" in cli_error(
        ["train", "--resume", str(path), "--steps", "6", "--sigma", "0.1"]
    )
    assert main(["train", "--resume", str(path), "--steps", "6", "--quiet"]) == 0
    meta = load_checkpoint(path).metadata
    assert meta["step"] == 6 and meta["run"]["sigma"] == 0.0
