"""Issue 17 (reliability v3): outputs that would replace an input, locks through symbolic links,
interrupted training, diverged runs on badly scaled data, and the clear errors of the low list."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bezkit.cli import main
from bezkit.training import load_checkpoint

FAST = ["--steps", "6", "--hidden", "16", "--depth", "1", "--batch-size", "32", "--quiet"]
EVAL_FAST = ["--n", "100", "--steps", "1", "--m-crossings", "10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small checkpoint trained on a point file (the source) and a named target."""
    folder = tmp_path_factory.mktemp("trained")
    points = folder / "points.csv"
    rows = np.random.default_rng(0).normal(size=(200, 2))
    points.write_text("".join(f"{a},{b}\n" for a, b in rows))
    ckpt = folder / "base"
    assert main(["train", *FAST, "--source", str(points), "--out", str(ckpt)]) == 0
    return ckpt, points


@pytest.mark.parametrize(
    "out",
    ["{ckpt}", "{ckpt}.safetensors", "{ckpt}.json", "link.safetensors", "hard.json", "{points}"],
)
def test_evaluate_out_refuses_any_input_file(trained, tmp_path, cli_error, out):
    """Issue 17 item 1: `evaluate base --out base.safetensors` replaced the checkpoint."""
    ckpt, points = trained
    (tmp_path / "link.safetensors").symlink_to(f"{ckpt}.safetensors")
    os.link(f"{ckpt}.json", tmp_path / "hard.json")
    before = {p: p.read_bytes() for p in (points, *ckpt.parent.glob("base.*"))}
    target = out.format(ckpt=ckpt, points=points)
    target = target if os.path.isabs(target) else str(tmp_path / target)
    line = cli_error(["evaluate", str(ckpt), *EVAL_FAST, "--out", target])
    assert "--out" in line and "input file" in line and "replace" in line
    assert {p: p.read_bytes() for p in before} == before
    load_checkpoint(ckpt)  # still a good checkpoint


def test_evaluate_out_refuses_a_given_data_file(trained, tmp_path, cli_error):
    ckpt, _ = trained
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((50, 2), dtype=np.float32))
    line = cli_error(
        ["evaluate", str(ckpt), *EVAL_FAST, "--target", str(other), "--out", str(other)]
    )
    assert "input file" in line
    assert np.load(other).shape == (50, 2)


def test_evaluate_out_beside_the_checkpoint_still_works(trained, tmp_path, capsys):
    ckpt, _ = trained
    out = tmp_path / "base.eval.json"
    assert main(["evaluate", str(ckpt), *EVAL_FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["checkpoint"] == str(ckpt)
