"""Issue 19: the experiment accepts torchcfm's sigma for the flows it trains from data."""

from __future__ import annotations

import pytest

from bezkit.experiments import ExperimentConfig, pair_units, toy2d


def _tiny(**overrides):
    return ExperimentConfig.quick(
        pairs=[("8gaussians", "moons")],
        seeds=2,
        rounds=1,
        student_rounds=1,
        methods=("rf-distill",),
        baselines=("otcfm",),
        chains=("reflow",),
        hidden=16,
        flow_steps=10,
        baseline_steps=10,
        student_steps=5,
        n_pairs=64,
        teacher_steps=4,
        n_eval=64,
        eval_draws=1,
        many_steps=4,
        n_projections=16,
        progress=False,
        **overrides,
    )


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_a_bad_sigma_is_refused_before_training(sigma):
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0"):
        _tiny(sigma=sigma).validate()


def test_sigma_reaches_the_1rf_and_the_ot_baseline_and_nothing_else(monkeypatch):
    """The flows trained from data (1-RF = I-CFM, OT-CFM) get the run's sigma; every other loss of
    the run is built elsewhere and keeps sigma = 0."""
    built: list[float] = []
    real = pair_units.FlowMatchingLoss

    def spy(*args, **kwargs):
        loss = real(*args, **kwargs)
        built.append(loss.sigma)
        return loss

    monkeypatch.setattr(pair_units, "FlowMatchingLoss", spy)
    result = toy2d.run_pair("8gaussians", "moons", _tiny(sigma=0.1))
    assert built == [0.1, 0.1]  # the 1-RF, then the otcfm baseline
    assert {r["method"] for r in result["runs"]} >= {"otcfm", "rf-distill"}


def test_the_experiment_command_takes_sigma(tmp_path, monkeypatch):
    from bezkit.cli import main

    seen = {}

    def fake_run(cfg, out, **kwargs):
        seen["sigma"] = cfg.sigma
        raise SystemExit(0)

    monkeypatch.setattr("bezkit.cli.experiment.run_experiment", fake_run)
    with pytest.raises(SystemExit):
        main(["experiment", "--quick", "--quiet", "--sigma", "0.1", "--out", str(tmp_path / "q")])
    assert seen == {"sigma": 0.1}
    seen.clear()
    code = main(["experiment", "--quick", "--sigma", "-1", "--out", str(tmp_path / "r")])
    assert code == 2 and not seen  # a usage error, before anything runs
