"""Lesson 05's chains widget and its paired comparisons, on a small made-up results file."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bezkit.widgets.chains import chain_comparison, chains_widget

SEEDS = (0, 1, 2)
#: many-step W2 per chain and round (before a per-seed offset and a per-draw wiggle)
BASE = {
    "reflow": {1: 0.12, 2: 0.14, 3: 0.15, 4: 0.155},
    "anchored": {1: 0.12, 2: 0.17, 3: 0.18, 4: 0.185},
    "bezier": {1: 0.12, 2: 0.11, 3: 0.10, 4: 0.09},
}


def w2(kind: str, k: int, seed: int) -> list[float]:
    offset = 0.01 * seed  # shared by every chain and round of a seed: cancels in paired differences
    noise = 0.002 * ((seed * 7 + k * 3 + len(kind)) % 5)  # different per chain, round and seed
    value = BASE[kind][k] + offset + noise
    return [value, value + 0.004]


def chain_record(kind: str, k: int, seed: int) -> dict:
    many = w2(kind, k, seed)
    return {
        "chain": kind,
        "k": k,
        "seed": seed,
        "metrics": {
            "w2": {"1": [v + 0.5 / k for v in many], "100": many},
            "reverse_x0_w2": [0.13, 0.14],
            "straightness": [2.0 / k, 2.0 / k],
            "crossings_per_trajectory": [0.0, 0.0],
        },
        "trained_on": {"pairs": "independent", "x0_w2": [0.06, 0.06], "x1_w2": [0.03, 0.03]},
    }


def make_results(kinds: tuple[str, ...] = ("reflow", "anchored", "bezier")) -> dict:
    chains = [chain_record(c, k, s) for c in kinds for k in BASE[c] for s in SEEDS]
    exp = {
        "source": "8gaussians",
        "target": "moons",
        "seeds": list(SEEDS),
        "noise_floor": [0.03, 0.04],
        "chains": chains,
        "runs": [],
    }
    return {"schema_version": 2, "experiments": [exp]}


def by_hand(a: list[list[float]], b: list[list[float]]) -> tuple[float, float, float]:
    d = [np.mean(np.subtract(x, y)) for x, y in zip(a, b, strict=True)]
    mean, sd, n = float(np.mean(d)), float(np.std(d, ddof=1)), len(d)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_chain_comparison_is_the_paired_t_interval():
    exp = make_results()["experiments"][0]
    got = chain_comparison(exp, "w2_many_steps", 3)
    assert set(got) == {"anchored", "bezier"}  # the reflow chain is the baseline
    want = by_hand([w2("anchored", 3, s) for s in SEEDS], [w2("reflow", 3, s) for s in SEEDS])
    assert (got["anchored"].mean, got["anchored"].low, got["anchored"].high) == pytest.approx(want)
    grown = chain_comparison(exp, "w2_many_steps", 4, against="round1")
    assert set(grown) == {"reflow", "anchored", "bezier"}
    want = by_hand([w2("bezier", 4, s) for s in SEEDS], [w2("bezier", 1, s) for s in SEEDS])
    assert (grown["bezier"].mean, grown["bezier"].low, grown["bezier"].high) == pytest.approx(want)
    # round 1 of every chain is the same model here: a zero difference, not distinguishable
    same = chain_comparison(exp, "w2_many_steps", 1, against="round1")["reflow"]
    assert same.mean == pytest.approx(0.0) and not same.excludes_zero()
    assert chain_comparison(exp, "w2_many_steps", 9) == {}
    with pytest.raises(ValueError, match="unknown comparison"):
        chain_comparison(exp, "w2_many_steps", 2, against="ot")
    with pytest.raises(ValueError, match="unknown chain field"):
        chain_comparison(exp, "fid", 2)


def test_chains_widget_round_slider_moves_the_marker_and_the_differences():
    res = make_results()
    b = chains_widget(res)
    k = b.controls["k"]
    assert (k.min, k.max, k.value) == (1, 4, 4) and not k.disabled
    assert list(b.trace("round k").x) == [4, 4]
    assert list(b.trace("reflow").y) == pytest.approx(
        [float(np.mean([np.mean(w2("reflow", r, s)) for s in SEEDS])) for r in (1, 2, 3, 4)]
    )
    at4 = dict(zip(b.trace("differences").y, b.trace("differences").x, strict=True))
    k.value = 2
    assert list(b.trace("round k").x) == [2, 2] and b.state["k"] == 2
    at2 = dict(zip(b.trace("differences").y, b.trace("differences").x, strict=True))
    assert at2["anchored"] == pytest.approx(chain_comparison(
        res["experiments"][0], "w2_many_steps", 2)["anchored"].mean)  # fmt: skip
    assert at2 != at4
    assert "round 2" in b.readout.value and "anchored - reflow" in b.readout.value
    # the bezier chain falls while reflow grows: distinguishably lower, and the readout says so
    assert "bezier - reflow" in b.readout.value and "(lower? yes)" in b.readout.value


def test_chains_widget_controls_pick_chains_metric_and_comparison():
    b = chains_widget(make_results(), k=3)
    assert b.controls["k"].value == 3
    b.controls["chains"].value = ("reflow", "bezier")
    assert list(b.trace("anchored").x) == [] and set(b.state["differences"]) == {"bezier"}
    b.controls["against"].value = "round1"
    assert set(b.state["differences"]) == {"reflow", "bezier"}
    assert "bezier at round 1" in b.readout.value
    b.controls["field"].value = "straightness"
    assert list(b.trace("noise floor").x) == []  # no noise floor for a non-W2 metric
    assert list(b.trace("reflow").y) == pytest.approx([2.0, 1.0, 2 / 3, 0.5])
    b.controls["field"].value = "w2_one_step"
    assert list(b.trace("noise floor").y) == pytest.approx([0.035, 0.035])


def test_chains_widget_refuses_bad_input():
    with pytest.raises(ValueError, match="no chains"):
        chains_widget({"experiments": [dict(make_results()["experiments"][0], chains=[])]})
    with pytest.raises(ValueError, match="unknown chain field"):
        chains_widget(make_results(), field="fid")
    with pytest.raises(ValueError, match="unknown comparison"):
        chains_widget(make_results(), against="ot")
    only = chains_widget(make_results(("anchored", "bezier")))  # no reflow chain to compare with
    assert only.state["differences"] == {}
