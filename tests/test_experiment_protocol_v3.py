"""Experiment v3: Holm-adjusted verdicts checked by hand, the student-budget rule, each seed's own
evaluation draws, the point-file noise floor and minimum sizes, the forward-pair students, and the
Bezier set-up built in one place."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from scipy import stats
from test_results import make_experiment  # the synthetic experiment with known numbers

from bezkit.cli import main
from bezkit.couplings.pairs import Pairs
from bezkit.data.split import MIN_PART_POINTS, check_split_sizes
from bezkit.data.toy2d import get_sampler
from bezkit.experiments import ExperimentConfig
from bezkit.experiments.claims import claims, findings
from bezkit.experiments.evaluate import make_eval_draws
from bezkit.experiments.pools import PoolMaker
from bezkit.experiments.protocol import STUDENTS, paired_baseline
from bezkit.experiments.results import method_values, student_budgets
from bezkit.experiments.seeds import eval_seed
from bezkit.experiments.statistics import (
    budget_verdict,
    holm,
    paired_difference,
    t_interval,
    t_test_p,
    verdict,
)
from bezkit.experiments.students import student_loss
from bezkit.experiments.toy2d import held_out_split, run_pair
from bezkit.methods.bezier_distillation import BezierDistillConfig, bezier_guides
from bezkit.methods.flow import new_mlp
from bezkit.training.objectives import FlowMatchingLoss

# -- statistics ------------------------------------------------------------------------------------


def test_holm_matches_a_hand_computation():
    # sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.5 (x1 = 0.5)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # monotone step-down: 0.04 x 3 = 0.12 is lifted to nothing lower than the previous 0.12
    assert holm([0.001, 0.04, 0.045]) == pytest.approx([0.003, 0.08, 0.08])
    # capped at 1, and a single test is unchanged
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([0.2]) == [0.2]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


def test_p_value_is_the_paired_t_test_and_agrees_with_the_interval():
    xs = [-0.02, -0.015, -0.03, -0.01]
    p = t_test_p(xs)
    assert p == pytest.approx(stats.ttest_1samp(xs, 0.0).pvalue, rel=1e-9)
    iv = t_interval(xs)
    assert iv.p == pytest.approx(p)
    assert iv.high < 0 and p < 0.05  # the 95% interval excludes 0 exactly when p < 0.05
    wide = t_interval([-0.02, 0.01, -0.005])
    assert wide.low < 0 < wide.high and wide.p > 0.05
    assert t_test_p([0.3]) == 1.0


def test_verdicts_come_from_adjusted_p_and_need_every_budget():
    iv = t_interval([-0.02, -0.025, -0.015])  # raw: below 0 (p about 0.02)
    assert iv.p < 0.05
    assert verdict(iv, holm([iv.p] * 40)[0]) == "not distinguishable"  # does not survive 40 tests
    assert verdict(iv, iv.p) == "yes"
    worse = t_interval([0.02, 0.021, 0.019])
    assert verdict(worse, worse.p) == "no (worse)"
    assert budget_verdict(["yes", "yes"]) == "yes"
    assert budget_verdict(["yes", "not distinguishable"]) == "depends on budget"
    assert budget_verdict(["no (worse)", "yes"]) == "depends on budget"


def _two_budget_experiment() -> dict:
    """The synthetic experiment of test_results with a second student budget (steps 40); the
    endpoint student is rf-distill-2 minus 0.1 at 10 steps and plus 0.1 at 40 (plus 0.001 per
    seed): clearly better at one budget, clearly worse at the other."""
    exp = make_experiment()
    longer = [copy.deepcopy(r) for r in exp["runs"] if r["k"] is not None]
    for r in longer:
        r["budget"]["steps"] = 40
    exp["runs"] += longer
    plain = {
        (r["k"], r["seed"], r["budget"]["steps"]): r["metrics"]["w2"]
        for r in exp["runs"]
        if r["method"] == "rf-distill-2"
    }
    for r in exp["runs"]:
        if r["method"] == "bezier-quadratic-2-endpoint":
            steps = r["budget"]["steps"]
            delta = (-0.1 if steps == 10 else 0.1) + 0.001 * r["seed"]
            base = plain[(r["k"], r["seed"], steps)]
            r["metrics"]["w2"] = {n: [v + delta for v in vals] for n, vals in base.items()}
    return exp


def test_claims_adjust_within_a_family_and_check_both_budgets():
    exp = _two_budget_experiment()
    assert student_budgets(exp) == [10, 40]
    found = {c.label: c for c in claims(exp)}
    label = "bezier-quadratic-2-endpoint beats plain distillation rf-distill-2 at equal NFE (k=1)"
    claim = found[label]
    # each budget's raw interval is the paired difference at that budget
    for b in (10, 40):
        raw = paired_difference(
            method_values(exp, "bezier-quadratic-2-endpoint", 1, budget=b),
            method_values(exp, "rf-distill-2", 1, 2, budget=b),
        )
        assert claim.intervals[b] == raw
    # the adjusted p is Holm over every student claim of that budget (and only those)
    family = [c for c in found.values() if c.family == "students"]
    assert len(family) == 4  # twin and plain distillation, k = 1 and 2
    for b in (10, 40):
        assert [c.adjusted[b] for c in family] == pytest.approx(
            holm([c.intervals[b].p for c in family])
        )
    assert claim.intervals[10].mean < 0 < claim.intervals[40].mean
    assert claim.verdicts == {10: "yes", 40: "no (worse)"}
    assert claim.answer == "depends on budget"
    # the chain claims are their own family, without a student budget
    chain = [c for c in found.values() if c.family == "chains"]
    assert chain and all(list(c.intervals) == [None] for c in chain)
    assert [c.adjusted[None] for c in chain] == pytest.approx(
        holm([c.intervals[None].p for c in chain])
    )
    rows = findings(exp, family="students")
    assert set(rows[label]) == {"students, 10 steps", "students, 40 steps", "answer"}
    assert "Holm" in rows[label]["students, 10 steps"]


def test_uniform_t_students_are_never_compared_with_plain_distillation():
    for name, spec in STUDENTS.items():
        if spec.steps is None and spec.pairs != "trajectory":
            assert paired_baseline(name) is None, name
            twin = spec.linear_twin
            assert twin is None or STUDENTS[twin].steps is None
    assert all("uniform" not in label or "plain distillation" not in label for label in [
        c.label for c in claims(make_experiment())
    ])  # fmt: skip


# -- evaluation draws and point files --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pair() -> dict:
    cfg = ExperimentConfig.quick(
        seeds=3, rounds=1, flow_steps=20, student_steps=5, n_pairs=64, teacher_steps=4, n_eval=64,
        many_steps=4, n_projections=8, baselines=(), chains=("reflow",), budget_factors=(1,),
        methods=("rf-distill-2", "bezier-forward-2-secant", "bezier-state-2-secant"),
        progress=False,
    )  # fmt: skip
    return run_pair("8gaussians", "moons", cfg)


def test_each_seed_has_its_own_evaluation_draws(tiny_pair):
    floors = tiny_pair["noise_floor_by_seed"]
    assert len(floors) == 3 and all(len(f) == 2 for f in floors)
    assert len({tuple(f) for f in floors}) == 3  # every seed's draws differ
    assert tiny_pair["noise_floor"] == [v for f in floors for v in f]
    src, ref = get_sampler("8gaussians"), get_sampler("moons")
    draws = [make_eval_draws(src, ref, n=64, draws=2, seed=eval_seed(s)) for s in (0, 1)]
    assert not torch.equal(draws[0].reference[0], draws[1].reference[0])
    assert not torch.equal(draws[0].x0[0], draws[1].x0[0])
    # a seed's two draws differ from each other as well
    assert not torch.equal(draws[0].reference[0], draws[0].reference[1])
    # each seed's chain record has its own draws' numbers
    adaptive = [c["metrics"]["w2_adaptive"] for c in tiny_pair["chains"]]
    assert len({tuple(a) for a in adaptive}) == 3


def test_point_file_floor_compares_the_two_disjoint_real_parts(tmp_path):
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(400, 2, generator=g)
    path = tmp_path / "pts.npy"
    import numpy as np

    np.save(path, pts.numpy())
    with pytest.warns(UserWarning, match="noisy"):  # 100 held-out points: measurable but noisy
        train, held, info = held_out_split(str(path), 0.25, seed=0)
    assert info["train"] == 300 and info["held_out"] == 100
    draws = make_eval_draws(
        get_sampler("gaussian"), held, n=64, draws=1, seed=3, second_sample=train
    )
    # the floor is W2(a training-part sample, the held-out reference), the same generator stream
    gen = torch.Generator().manual_seed(3 + 10_007)
    for sampler in (get_sampler("gaussian"), held, get_sampler("gaussian")):
        sampler.sample(64, gen)
    expected = draws.w2(train.sample(64, gen), draws.reference[0])
    assert draws.noise_floor[0] == pytest.approx(expected)
    train_rows = {tuple(r) for r in train.points.tolist()}
    assert not train_rows & {tuple(r) for r in held.points.tolist()}
    # the old floor (held-out part against itself) is lower: resampled duplicates
    self_floor = make_eval_draws(get_sampler("gaussian"), held, n=64, draws=1, seed=3)
    assert self_floor.noise_floor[0] != pytest.approx(draws.noise_floor[0])


def test_too_small_parts_are_refused_and_small_ones_warned(tmp_path, capsys):
    import numpy as np

    five = tmp_path / "five.npy"
    np.save(five, np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(ValueError, match=f"at least {MIN_PART_POINTS} points"):
        held_out_split(str(five), 0.2, seed=0)
    code = main(
        ["experiment", "--quick", "--pair", f"gaussian:{five}", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code != 0 and f"at least {MIN_PART_POINTS} points" in err and "Traceback" not in err
    big = tmp_path / "big.npy"
    np.save(big, np.random.default_rng(0).normal(size=(2000, 2)))
    code = main(["experiment", "--quick", "--pair", f"gaussian:{big}",
                 "--held-out-fraction", "0.001", "--out", str(tmp_path / "o2")])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "--held-out-fraction" in err and "2 held-out" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    with pytest.warns(UserWarning, match="noisy"):
        check_split_sizes("x", 100, 40, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_split_sizes("x", 4000, 1000, 0.2)


# -- forward-pair students and the one Bezier set-up ----------------------------------------------


def _pools() -> tuple[PoolMaker, torch.nn.Module]:
    teacher = new_mlp(2, hidden=16, depth=2, seed=0).eval()
    maker = PoolMaker(get_sampler("8gaussians"), get_sampler("moons"), n_pairs=32,
                      teacher_steps=4, num_branches=4, pair_seed=5)  # fmt: skip
    return maker, teacher


def test_forward_students_train_on_the_very_pairs_of_rf_distill():
    maker, teacher = _pools()
    plain = maker.reflow(teacher).pairs
    for name in ("bezier-forward-2-secant", "bezier-state-4-secant"):
        spec = STUDENTS[name]
        cfg = spec.distill_config(n_pairs=32, teacher_steps=4, pair_seed=5)
        made = maker.forward(teacher, cfg).pairs
        assert torch.equal(made.x0, plain.x0) and torch.equal(made.x1, plain.x1)
        assert spec.linear_twin == f"rf-distill-{spec.nfe}" == paired_baseline(name)
    # the teacher-state control passes through the teacher's ODE state at s = 1/2
    spec = STUDENTS["bezier-state-2-secant"]
    cfg = spec.distill_config(n_pairs=32, teacher_steps=4, pair_seed=5)
    pairs = maker.forward(teacher, cfg).pairs
    from bezkit.paths.bezier import BezierPath
    from bezkit.solvers.ode import solve_ode

    half = solve_ode(teacher, pairs.x0, steps=2, t_end=0.5).x
    mid = BezierPath(2).point(pairs.x0, pairs.x1, torch.full((32,), 0.5), pairs.guides)
    assert torch.allclose(mid, half, atol=1e-5)


def test_the_bezier_setup_is_built_in_one_place_and_the_callers_agree():
    """The recipe (``BezierDistillConfig.flow``), the image stage (the same call) and the
    experiment's students (``student_loss``) give identical targets on the same pairs."""
    _, teacher = _pools()
    for name in ("bezier-quadratic-2-secant", "bezier-forward-4-secant", "bezier-quadratic-uniform",
                 "bezier-quadratic-4-endpoint", "rf-distill-2"):  # fmt: skip
        spec = STUDENTS[name]
        cfg = spec.distill_config(n_pairs=32, teacher_steps=4, pair_seed=5)
        x0, x1 = torch.randn(32, 2), torch.randn(32, 2)
        pairs = Pairs(x0, x1, bezier_guides([teacher], x0, x1, cfg))
        flow = cfg.flow()
        recipe = FlowMatchingLoss(flow.path, target=flow.target, time_sampler=flow.time_sampler,
                                  grid_steps=flow.grid_steps)  # fmt: skip
        experiment = student_loss(spec)
        student = new_mlp(2, hidden=16, depth=2, seed=1)
        a = recipe.single_loss(student, pairs, torch.Generator().manual_seed(3))
        b = experiment.single_loss(student, pairs, torch.Generator().manual_seed(3))
        assert torch.equal(a, b), name
        assert repr(recipe) == repr(experiment)
    image_cfg = BezierDistillConfig(order=2, target="secant", distill_steps=2)
    assert repr(image_cfg.flow()) == repr(
        STUDENTS["bezier-quadratic-2-secant"].distill_config().flow()
    )


def test_sliced_w2_sorts_rows_with_the_same_values_as_the_column_formula():
    from bezkit.metrics.wasserstein import sliced_wasserstein2

    g = torch.Generator().manual_seed(0)
    a = torch.randn(512, 2, generator=g, dtype=torch.float64)
    b = 1.3 * torch.randn(512, 2, generator=g, dtype=torch.float64) + 0.2
    theta = torch.randn(2, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = torch.sort(a @ theta, dim=0).values, torch.sort(b @ theta, dim=0).values
    want = float(torch.sqrt(((pa - pb) ** 2).mean()))
    assert sliced_wasserstein2(a, b, n_projections=64, seed=7) == want


def test_budget_factors_option_is_checked_before_training(tmp_path, capsys):
    out = tmp_path / "x"
    code = main(
        ["experiment", "--quick", "--quiet", "--budget-factors", "4", "1", "--out", str(out)]
    )
    assert code == 2 and "increasing" in capsys.readouterr().err and not out.exists()
