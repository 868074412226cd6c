"""``bezkit benchmark torchcfm-2d`` and bezkit.protocols.torchcfm2d, on tiny settings."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from bezkit.cli import main
from bezkit.cli.benchmark import run_protocol
from bezkit.protocols.torchcfm2d import (
    TASKS,
    BenchmarkSettings,
    summarise,
    table_markdown,
    task_data,
)

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = BenchmarkSettings(
    steps=3, val_every=2, n_train=200, n_val=40, n_test=50, batch_size=32, euler_steps=4
)


def test_task_data_splits_and_sources():
    data = task_data(TASKS["moons->8gaussians"], 42, TINY)
    assert data.train_target.points.shape == (200, 2)
    assert data.val.x0.shape == data.val.x1.shape == (40, 2)
    assert data.test_x0.shape == data.test_x1.shape == (50, 2)
    # the source's own splits, disjoint draws of the seed; the same seed gives the same data
    again = task_data(TASKS["moons->8gaussians"], 42, TINY)
    assert torch.equal(data.test_x0, again.test_x0) and torch.equal(data.val.x1, again.val.x1)
    other = task_data(TASKS["moons->8gaussians"], 43, TINY)
    assert not torch.equal(data.test_x1, other.test_x1)
    gauss = task_data(TASKS["N->moons"], 42, TINY)
    assert gauss.train_source.name == "gaussian"  # drawn fresh per batch


def test_runs_are_the_same_whatever_the_jobs():
    kw = {"tasks": ["N->scurve"], "methods": ["I-CFM", "OT-CFM"], "seeds": [42]}
    one = run_protocol(TINY, jobs=1, **kw)
    two = run_protocol(TINY, jobs=2, **kw)
    strip = [{k: v for k, v in r.__dict__.items() if k != "train_seconds"} for r in one]
    assert strip == [{k: v for k, v in r.__dict__.items() if k != "train_seconds"} for r in two]
    assert [(r.method, r.best_step) for r in one] == [
        ("I-CFM", one[0].best_step),
        ("OT-CFM", one[1].best_step),
    ]
    for r in one:
        assert r.best_step in (2, 3) and [s for s, _ in r.val_losses] == [2, 3]
        assert r.npe == pytest.approx(abs(r.path_energy - r.w2_squared) / r.w2_squared)


def test_summary_mean_and_std_over_seeds():
    runs = run_protocol(TINY, tasks=["N->moons"], methods=["I-CFM"], seeds=[1, 2])
    summary = summarise(runs)
    w2 = summary["N->moons"]["I-CFM"]["w2"]
    assert w2["mean"] == pytest.approx(statistics.fmean(r.w2 for r in runs))
    assert w2["std"] == pytest.approx(statistics.stdev(r.w2 for r in runs))
    table = table_markdown(summary)
    assert "| N->moons |" in table and "| - | - |" in table  # OT-CFM not run
    assert summary["N->moons"]["I-CFM"]["noise_floor"]["mean"] > 0


def test_cli_writes_results_and_refuses_to_overwrite(tmp_path, capsys, cli_error, monkeypatch):
    import bezkit.cli.benchmark as bench

    monkeypatch.setattr(
        bench,
        "BenchmarkSettings",
        lambda steps, val_every: BenchmarkSettings(
            steps=steps,
            val_every=val_every,
            n_train=200,
            n_val=40,
            n_test=50,
            batch_size=32,
            euler_steps=4,
        ),
    )
    out = tmp_path / "tcfm"
    argv = ["benchmark", "torchcfm-2d", "--steps", "2", "--val-every", "1", "--tasks", "N->moons"]
    argv += ["--methods", "OT-CFM", "--seeds", "42", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["settings"]["steps"] == 2 and report["settings"]["published_steps"] == 20_000
    assert report["settings"]["sigma"] == 0.1 and len(report["runs"]) == 1
    assert report["summary"]["N->moons"]["OT-CFM"]["w2"]["mean"] == report["runs"][0]["w2"]
    assert (out / "table.md").read_text().startswith("| task |")
    assert "--overwrite" in cli_error(argv)
    assert "twice" in cli_error([*argv[:-2], "--seeds", "1", "1", "--out", str(tmp_path / "b")])
