"""Normalised path energy (a hand-computed case) and ``bezkit evaluate --test FILE`` (a fixed test
set scored as it is)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from bezkit.cli import main
from bezkit.cli.evaluate import evaluate_checkpoint
from bezkit.experiments.evaluate import evaluate_flow
from bezkit.metrics import normalised_path_energy

pytestmark = pytest.mark.usefixtures("single_thread")


class Constant(nn.Module):
    """``v(x, t) = (1, 0)`` everywhere."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tensor([1.0, 0.0]).expand_as(x)


def test_npe_hand_computed():
    # two points move 1 to the right at unit speed: path energy int_0^1 ||(1, 0)||^2 dt = 1;
    # the reference lies 2 to the right of x0, so W2^2(x0, reference) = 4 and NPE = |1 - 4| / 4
    x0 = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    reference = torch.tensor([[2.0, 1.0], [2.0, 0.0]])
    ev = evaluate_flow(Constant(), x0, reference, steps=[4], paths=True, crossings=2, npe=True)
    assert ev.paths is not None
    assert ev.paths.path_energy == pytest.approx(1.0)
    assert ev.paths.w2_squared == pytest.approx(4.0)
    assert ev.paths.normalised_path_energy == pytest.approx(0.75)
    assert normalised_path_energy(5.0, 4.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="W2"):
        normalised_path_energy(1.0, 0.0)
    # not asked: not computed
    plain = evaluate_flow(Constant(), x0, reference, steps=[4], paths=True, crossings=2)
    assert plain.paths is not None and plain.paths.normalised_path_energy is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("npe") / "flow"
    args = ["train", "--steps", "20", "--hidden", "16", "--depth", "1", "--batch-size", "32"]
    assert main([*args, "--quiet", "--out", str(path)]) == 0
    return path


def test_evaluate_test_file_scores_exactly_those_points(tiny, tmp_path, capsys):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(37, 2)).astype(np.float32)
    np.save(tmp_path / "test.npy", points)
    np.save(tmp_path / "shuffled.npy", points[rng.permutation(37)])
    common = [str(tiny), "--steps", "4", "--m-crossings", "10"]
    assert main(["evaluate", *common, "--test", str(tmp_path / "test.npy")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 37  # the test set's size, not a resampled 2000
    assert report["test"]["file"].endswith("test.npy") and len(report["test"]["sha256"]) == 64
    pm = report["path_metrics"]
    assert pm["w2_squared"] == report["ot_cost"]
    assert pm["normalised_path_energy"] == pytest.approx(
        abs(pm["path_energy"] - pm["w2_squared"]) / pm["w2_squared"]
    )
    # the same points in another order give the same W2: scored as a set, never resampled
    assert main(["evaluate", *common, "--test", str(tmp_path / "shuffled.npy")]) == 0
    shuffled = json.loads(capsys.readouterr().out)
    assert shuffled["results"][0]["w2"] == pytest.approx(report["results"][0]["w2"], rel=1e-9)
    # the API takes the points themselves
    api = evaluate_checkpoint(str(tiny), test=torch.from_numpy(points), steps=[4], m_crossings=10)
    assert api["results"] == report["results"]


def test_evaluate_bad_test_file(tiny, tmp_path, cli_error):
    np.save(tmp_path / "three.npy", np.zeros((5, 3), dtype=np.float32))
    line = cli_error(["evaluate", str(tiny), "--test", str(tmp_path / "three.npy")])
    assert "--test must hold (n, 2) points" in line
    assert "--test" in cli_error(["evaluate", str(tiny), "--test", str(tmp_path / "missing.npy")])
