"""The experiment: bad options fail fast; the quick run writes every file with finite numbers and
shows what reflow is for (2-RF straighter, fewer crossings than 1-RF)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bezkit.cli import main
from bezkit.experiments import ExperimentConfig


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quick")
    assert main(["experiment", "--quick", "--quiet", "--out", str(out), "--seed", "0"]) == 0
    return out


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_quick_run_writes_every_file(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    assert (quick_run / "report.md").read_text().startswith("# bezkit 2D experiment")
    for name in (
        "8gaussians-to-moons-trajectories.png",
        "8gaussians-to-moons-w2-vs-k.png",
        "8gaussians-to-moons-w2-vs-steps.png",
        "8gaussians-to-moons-straightness-crossings.png",
    ):
        assert (quick_run / name).stat().st_size > 10_000
    nums = list(_numbers(results["experiments"]))
    assert nums and all(math.isfinite(v) for v in nums)
    exp = results["experiments"][0]
    methods = {(r["method"], r["k"]) for r in exp["runs"]}
    for m in ("rf", "rf-distill", "anchored-distill", "bezier-quadratic", "bezier-cubic", "bdense"):
        assert {(m, 1), (m, 2)} <= methods
    assert {("otcfm", 1), ("full-ot", 1)} <= methods
    assert all(r["train_seconds"] > 0 for r in exp["runs"])
    assert set(exp["error_accumulation"]) == {"1", "2"}


def test_quick_run_reflow_straightens_and_uncrosses(quick_run):
    exp = json.loads((quick_run / "results.json").read_text())["experiments"][0]
    rf = {r["k"]: r["metrics"] for r in exp["runs"] if r["method"] == "rf"}
    assert rf[2]["straightness"] < rf[1]["straightness"]
    assert rf[2]["crossings_per_trajectory"] < rf[1]["crossings_per_trajectory"]
    # and the straighter flow is much better at one step
    assert rf[2]["w2"]["1"] < rf[1]["w2"]["1"]


def test_quick_run_refuses_to_overwrite(quick_run, capsys):
    assert main(["experiment", "--quick", "--quiet", "--out", str(quick_run)]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--rounds", "0"], "rounds K"),
        (["--methods", "rf", "magic"], "unknown method"),
        (["--pair", "8gaussians:nothing"], "unknown dataset"),
        (["--pair", "moons"], "SOURCE:TARGET"),
    ],
)
def test_bad_options_are_clear_errors_before_training(args, match, tmp_path, capsys):
    code = main(["experiment", "--quick", "--quiet", "--out", str(tmp_path / "x"), *args])
    assert code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_config_validation():
    with pytest.raises(ValueError, match="K must be"):
        ExperimentConfig(rounds=0).validate()
    with pytest.raises(ValueError, match="n_eval"):
        ExperimentConfig(n_eval=10_000).validate()
    with pytest.raises(ValueError, match="eval_steps"):
        ExperimentConfig(eval_steps=(0, 1)).validate()


def test_user_csv_data_works(tmp_path):
    import numpy as np

    from bezkit.experiments import run_experiment

    pts = np.random.default_rng(0).normal(size=(500, 2)) * [2.0, 0.5]
    np.savetxt(tmp_path / "mine.csv", pts, delimiter=",", header="x,y", comments="")
    cfg = ExperimentConfig.quick(
        pairs=[("gaussian", str(tmp_path / "mine.csv"))],
        rounds=1,
        methods=("rf", "rf-distill"),
        flow_steps=100,
        round_steps=50,
        n_pairs=300,
        n_eval=200,
        m_crossings=50,
        progress=False,
    )
    results = run_experiment(cfg, tmp_path / "out")
    assert (tmp_path / "out" / "results.json").exists()
    assert {r["method"] for r in results["experiments"][0]["runs"]} == {"rf", "rf-distill"}
