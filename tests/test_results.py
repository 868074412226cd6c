"""results.json (schema 2) and its readers, the statistics behind every interval, and the figures
and widget that draw them, on a small synthetic results dict with known numbers."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from bezkit.experiments import results as R
from bezkit.experiments.figures import plot_chains
from bezkit.experiments.statistics import Interval, paired_difference, seed_means, t_interval
from bezkit.plot import plot_few_step, plot_intervals_by_k, plot_paired_differences
from bezkit.widgets import error_accumulation_widget

SEEDS = [0, 1, 2]


def _budget() -> dict:
    return {"steps": 10, "batch_size": 8, "pairs": 100, "teacher_nfe_per_pair": 4,
            "teacher_nfe": 400, "wall_seconds": 1.5}  # fmt: skip


def _run(method: str, k: int | None, seed: int, base: float, steps=(1, 2, 4)) -> dict:
    # draw d of seed s: base + 0.01 * s + 0.001 * d (two draws)
    w2 = {str(n): [base + 0.01 * seed + 0.001 * d + 0.0 * n for d in range(2)] for n in steps}
    return {"method": method, "k": k, "seed": seed, "metrics": {"w2": w2, "w2_exact": {}},
            "final_loss": 0.1, "budget": _budget()}  # fmt: skip


def _chain(kind: str, k: int, seed: int, base: float) -> dict:
    vals = [base + 0.01 * seed, base + 0.01 * seed + 0.002]
    return {
        "chain": kind,
        "k": k,
        "seed": seed,
        "metrics": {
            "w2": {"1": [v + 0.5 for v in vals], "16": vals},
            "reverse_x0_w2": [v + 0.1 for v in vals],
            "straightness": [1.0 / k, 1.0 / k],
            "transport_cost": [1.0, 1.0],
            "crossings_per_trajectory": [2.0 / k, 2.0 / k],
        },
        "trained_on": {
            "pairs": "independent" if k == 1 else f"made by round {k - 1}",
            "x0_w2": vals,
            "x1_w2": vals,
            "transport_cost": 1.0,
            "segment_crossing_fraction": 0.1,
        },
        "budget": _budget(),
    }


def make_experiment(source: str = "8gaussians", target: str = "moons", shift: float = 0.0):
    runs = []
    for s in SEEDS:
        runs.append(_run("otcfm", None, s, 0.40 + shift, steps=(1, 2, 4, 16)))
        for k in (1, 2):
            runs += [
                _run("rf-distill", k, s, 0.30 + shift),
                _run("anchored-distill", k, s, 0.32 + shift),
                _run("rf-distill-2", k, s, 0.28 + shift),
                _run("anchored-distill-2", k, s, 0.29 + shift),
                # seed-dependent gain: the difference to rf-distill-2 is -0.02 - 0.01 * s
                _run("bezier-quadratic-2-endpoint", k, s, 0.26 - 0.01 * s + shift),
            ]
    chains = [
        _chain(kind, k, s, base + 0.02 * k * (kind == "reflow") + shift)
        for kind, base in (("reflow", 0.25), ("bezier", 0.25))
        for k in (1, 2, 3)
        for s in SEEDS
    ]
    couplings = [
        {"coupling": name, "k": k, "seed": s, "x0_w2": [0.1 + 0.01 * s, 0.1],
         "x1_w2": [0.2, 0.2 + 0.01 * s], "transport_cost": 0.6, "segment_crossing_fraction": 0.01}
        for name in ("reflow", "data-anchored") for k in (1, 2) for s in SEEDS
    ]  # fmt: skip
    return {
        "source": source,
        "target": target,
        "data": {},
        "seeds": list(SEEDS),
        "w2_estimator": "sliced",
        "n_eval": 64,
        "eval_draws": 2,
        "noise_floor": [0.1, 0.12],
        "source_noise_floor": [0.1, 0.1],
        "runs": runs,
        "chains": chains,
        "couplings": couplings,
        "wall_seconds": 3.0,
    }


def make_results(n: int = 1) -> dict:
    exps = [make_experiment(), make_experiment("gaussian", "moons", shift=0.1)][:n]
    return {"schema_version": R.SCHEMA_VERSION, "command": "test", "date": None,
            "machine": {}, "config": {}, "wall_seconds": 3.0, "experiments": exps}  # fmt: skip


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- statistics ------------------------------------------------------------------------------------


def test_t_interval_is_the_student_t_formula():
    xs = [0.30, 0.34, 0.29, 0.35]
    iv = t_interval(xs)
    mean, sd = np.mean(xs), np.std(xs, ddof=1)
    half = stats.t.ppf(0.975, 3) * sd / math.sqrt(4)
    assert iv.mean == pytest.approx(mean) and iv.n == 4
    assert (iv.low, iv.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    one = t_interval([0.5])
    assert (one.low, one.mean, one.high, one.n) == (0.5, 0.5, 0.5, 1)
    assert one.format() == "0.500" and not one.excludes_zero()
    assert iv.format(2).startswith("0.32 [")
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="no values"):
        t_interval([])


def test_paired_difference_cancels_the_shared_noise():
    # a shared per-seed offset (large) plus a constant gap: the paired interval is the gap exactly
    offsets = [0.0, 0.3, -0.2]
    a = [[0.5 + o, 0.6 + o] for o in offsets]
    b = [[0.4 + o, 0.5 + o] for o in offsets]
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.1) and d.half_width == pytest.approx(0.0, abs=1e-12)
    assert d.excludes_zero()
    unpaired = t_interval(seed_means(a)).half_width
    assert unpaired > 0.3  # the same numbers compared unpaired are indistinguishable
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference(a, b[:2])
    with pytest.raises(ValueError, match="same draws"):
        paired_difference([[1.0]], [[1.0, 2.0]])


# -- files -----------------------------------------------------------------------------------------


def test_save_and_load_round_trip_and_refuse_bad_files(tmp_path):
    res = make_results(2)
    path = R.save_results(tmp_path / "results.json", res)
    assert R.load_results(path) == json.loads(json.dumps(res))
    old = dict(res, schema_version=1)
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="schema version 1"):
        R.load_results(tmp_path / "old.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a bezkit experiment"):
        R.load_results(tmp_path / "other.json")
    bad = make_results(1)
    bad["experiments"][0]["runs"][0]["metrics"]["w2"]["1"][0] = float("inf")
    with pytest.raises(ValueError, match=r"runs\[0\]\.metrics\.w2\.1\[0\] is not finite"):
        R.save_results(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()


# -- readers ---------------------------------------------------------------------------------------


def test_method_values_and_intervals():
    exp = make_experiment()
    vals = R.method_values(exp, "rf-distill", 1)
    assert vals == [[pytest.approx(0.30 + 0.01 * s + 0.001 * d) for d in range(2)] for s in SEEDS]
    by = R.metric_by_k(exp)
    assert list(by) == [
        "rf-distill",
        "anchored-distill",
        "rf-distill-2",
        "anchored-distill-2",
        "bezier-quadratic-2-endpoint",
    ]
    iv = by["rf-distill"][2]
    assert iv == t_interval([0.3005, 0.3105, 0.3205])
    assert R.student_rounds(exp) == [1, 2]
    assert R.step_counts(exp) == [1, 2, 4, 16]
    assert R.methods_of(exp)[-1] == "otcfm" and "otcfm" not in R.methods_of(exp, baselines=False)
    assert R.baseline_values(exp)["otcfm"].mean == pytest.approx(0.4105)
    curves = R.w2_by_steps(exp, 1)
    assert list(curves["otcfm"]) == [1, 2, 4, 16] and list(curves["rf-distill (k=1)"]) == [1, 2, 4]
    with pytest.raises(KeyError, match="no w2 at 7 steps"):
        R.method_values(exp, "rf-distill", 1, 7)
    with pytest.raises(KeyError, match="no run of rf-distill at k=5"):
        R.method_values(exp, "rf-distill", 5)
    with pytest.raises(ValueError, match="select_experiment"):
        R.metric_by_k(make_results(2))


def test_paired_and_twin_tables_compare_at_equal_nfe():
    exp = make_experiment()
    table = R.paired_table(exp, 2)
    assert "rf-distill" not in table and "rf-distill-2" not in table  # baselines themselves
    assert table["anchored-distill"].mean == pytest.approx(0.02)
    assert table["anchored-distill"].half_width == pytest.approx(0.0, abs=1e-12)
    bez = table["bezier-quadratic-2-endpoint"]  # against rf-distill-2: -0.02 - 0.01 s
    assert bez == paired_difference(
        R.method_values(exp, "bezier-quadratic-2-endpoint", 2),
        R.method_values(exp, "rf-distill-2", 2),
    )
    assert bez.mean == pytest.approx(-0.03) and bez.excludes_zero()
    twins = R.twin_table(exp, 2)
    assert list(twins) == ["bezier-quadratic-2-endpoint"]
    assert twins["bezier-quadratic-2-endpoint"].mean == pytest.approx(-0.04)


def test_chain_readers_and_differences():
    exp = make_experiment()
    by = R.chain_by_k(exp, "w2_many_steps")
    assert list(by) == ["reflow", "bezier"] and list(by["reflow"]) == [1, 2, 3]
    assert by["reflow"][3].mean == pytest.approx(0.25 + 0.06 + 0.01 + 0.001)
    diff = R.chain_difference_by_k(exp, "w2_many_steps")
    assert list(diff) == ["bezier"]
    assert diff["bezier"][2].mean == pytest.approx(-0.04)
    assert diff["bezier"][2].half_width == pytest.approx(0.0, abs=1e-12)
    assert R.chain_by_k(exp, "w2_one_step")["bezier"][1].mean == pytest.approx(0.761)
    assert R.chain_by_k(exp, "straightness")["reflow"][2].mean == pytest.approx(0.5)
    with pytest.raises(KeyError, match="unknown chain field"):
        R.chain_values(exp, "reflow", 1, "fid")
    with pytest.raises(KeyError, match="no anchored chain round 1"):
        R.chain_values(exp, "anchored", 1, "w2_one_step")
    both = {side: R.coupling_by_k(exp, side) for side in ("x0_w2", "x1_w2")}
    assert both["x0_w2"]["data-anchored"][1].mean == pytest.approx(0.105)
    assert both["x1_w2"]["reflow"][2].mean == pytest.approx(0.205)


def test_budget_and_format_table():
    exp = make_experiment()
    budgets = R.budget_table(exp)
    assert budgets["rf-distill"] == {"steps": 10, "pairs": 100, "teacher_nfe": 400.0,
                                     "wall_seconds": 1.5}  # fmt: skip
    assert "reflow chain round" in budgets
    text = R.format_table({1: {"a": Interval(0.5, 0.4, 0.6, 3), "b": 0.25}, 2: {"b": "x"}})
    assert text.splitlines() == [
        "| k | a | b |",
        "| --- | --- | --- |",
        "| 1 | 0.500 [0.400, 0.600] | 0.250 |",
        "| 2 |  | x |",
    ]


# -- figures and widget ----------------------------------------------------------------------------


def test_interval_figures_draw_means_and_bands():
    exp = make_experiment()
    series = R.chain_by_k(exp, "w2_many_steps")
    ax = plot_intervals_by_k(series, reference=0.11)
    np.testing.assert_allclose(
        ax.lines[0].get_ydata(), [series["reflow"][k].mean for k in (1, 2, 3)]
    )
    assert len(ax.collections) == 2  # one band per chain
    assert [line.get_label() for line in ax.lines] == ["reflow", "bezier", "noise floor"]
    ax = plot_paired_differences(R.paired_table(exp, 2))
    assert ax.get_yticklabels()[0].get_text() == "anchored-distill"
    ax = plot_few_step({"linear": {1: series["reflow"][1], 2: series["reflow"][2]}})
    assert ax.get_xscale() == "log"
    ax = plot_chains(make_results(1), "w2_one_step", chains=["bezier"])
    assert [line.get_label() for line in ax.lines] == ["bezier", "noise floor"]


def test_results_widget_switches_views_and_reads_intervals():
    res = make_results(2)
    b = error_accumulation_widget(res)
    assert list(b.controls["pair"].options) == ["8gaussians -> moons", "gaussian -> moons"]
    exp = res["experiments"][0]
    want = R.chain_by_k(exp, "w2_many_steps")
    assert list(b.trace("reflow").y) == pytest.approx([iv.mean for iv in want["reflow"].values()])
    assert list(b.trace("bezier - reflow").y) == pytest.approx([-0.02, -0.04, -0.06])
    assert "not distinguishable" not in b.readout.value  # the chain gap has no spread
    b.controls["view"].value = "students"
    assert list(b.trace("reflow").x) == []
    diffs = b.state["differences"]
    assert set(diffs) == {"bezier-quadratic-2-endpoint"}  # the default selection
    b.controls["methods"].value = ("anchored-distill", "bezier-quadratic-2-endpoint")
    assert b.state["differences"]["anchored-distill"].mean == pytest.approx(0.02)
    b.controls["baseline"].value = "twin"
    assert list(b.state["differences"]) == ["bezier-quadratic-2-endpoint"]
    b.controls["pair"].value = "gaussian -> moons"
    assert b.trace("bezier-quadratic-2-endpoint").y[0] == pytest.approx(0.3605)
    with pytest.raises(ValueError, match="unknown chain field"):
        error_accumulation_widget(res, field="fid")
    with pytest.raises(ValueError, match="no experiment"):
        error_accumulation_widget({"experiments": []})
