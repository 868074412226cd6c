"""The experiment: the protocol holds for every method (training times, pairs, held-out data), bad
options fail before any training, and the quick run writes every file with finite numbers and
intervals, and shows what reflow is for."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bezkit.cli import main
from bezkit.couplings.pairs import Pairs
from bezkit.data.toy2d import get_sampler
from bezkit.experiments import ExperimentConfig
from bezkit.experiments.evaluate import evaluate_coupling, make_eval_draws
from bezkit.experiments.pools import PoolMaker
from bezkit.experiments.protocol import (
    DEFAULT_STUDENTS,
    EXTRA_STUDENTS,
    FORWARD_STUDENTS,
    FULL_STUDENTS,
    QUICK_STUDENTS,
    SECANT_STUDENTS,
    STUDENTS,
    paired_baseline,
)
from bezkit.experiments.results import (
    chain_by_k,
    coupling_by_k,
    load_results,
    metric_by_k,
    paired_table,
    student_budgets,
)
from bezkit.experiments.seeds import train_seeds
from bezkit.experiments.students import student_loss, student_setup
from bezkit.experiments.toy2d import held_out_split
from bezkit.experiments.trajectories import TRAJECTORIES_FILE, load_trajectories
from bezkit.methods.flow import new_mlp
from bezkit.training.config import TrainConfig
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import train


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


# -- the protocol ----------------------------------------------------------------------------------


class _TimeRecorder(nn.Module):
    """Wraps a student and records every time it is called at (``forward`` and ``branches``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.times: list[float] = []

    def forward(self, x, t, **kwargs):  # kwargs: BranchedVelocity's branches=True
        self.times += t.tolist()
        return self.inner(x, t, **kwargs)

    def branches(self, x, t):
        self.times += t.tolist()
        return self.inner.branches(x, t)


@pytest.fixture(scope="module")
def tiny_round():
    source, target = get_sampler("8gaussians"), get_sampler("moons")
    teacher = new_mlp(2, hidden=16, depth=2, seed=0).eval()
    second = new_mlp(2, hidden=16, depth=2, seed=1).eval()
    pools = PoolMaker(source, target, n_pairs=64, teacher_steps=4, num_branches=4, pair_seed=3)
    return teacher, second, pools


@pytest.mark.parametrize("name", list(STUDENTS))
def test_every_student_trains_only_at_its_own_times(name, tiny_round):
    """One-step students see t = 0 only, N-step students their grid, B-DENSE s = 0 (or its branch
    grid when trained for restarts); uniform-t students are the only ones with other times."""
    teacher, second, pools = tiny_round
    spec = STUDENTS[name]
    setup = student_setup(spec, teacher, pools, second_teacher=second)
    loss = student_loss(spec)
    rec = _TimeRecorder(setup.model)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        loss(rec, setup.pool.sample(200, g), g)
    seen = set(rec.times)
    allowed = spec.allowed_times()
    if allowed is None:
        assert spec.steps is None and name.endswith("-uniform")
        assert len(seen) > 100 and min(seen) >= 0.0 and max(seen) <= 1.0
    else:
        assert all(min(abs(t - a) for a in allowed) < 1e-6 for t in seen), (seen, allowed)
        assert len(seen) == len(allowed)  # every grid time is used
        if spec.nfe == 1 and not spec.restarts:
            assert seen == {0.0}


def test_no_one_step_bezier_column_and_baselines_at_equal_nfe():
    # at t = 0 the endpoint target is X1 - X0 for every curve: no one-step Bezier method exists
    for spec in STUDENTS.values():
        if spec.order > 1:
            assert spec.steps != 1
        base = paired_baseline(spec.name)
        if spec.steps is None and spec.pairs != "trajectory":
            assert base is None  # uniform-t students are compared with uniform-t ones only
        else:
            assert base is not None and STUDENTS[base].nfe == spec.nfe
        if spec.linear_twin is not None:
            twin = STUDENTS[spec.linear_twin]
            assert twin.order == 1 and twin.steps == spec.steps
            # the same pairs: data-anchored for the anchored curves, the reflow pairs of
            # rf-distill-N for the forward ones
            assert twin.pairs == ("reflow" if spec.pairs == "forward" else "anchored")


def test_secant_students_are_in_every_table_last_and_train_on_their_own_grid(tiny_round):
    """``*-secant``: the quadratic curve of the anchored pool, its secant on the N-step grid; in
    the default and the full table, after every other method (a method's training seeds depend on
    its position, so adding them leaves the other methods' numbers as they were)."""
    assert set(SECANT_STUDENTS) == {"bezier-quadratic-2-secant", "bezier-quadratic-4-secant"}
    n, later = len(SECANT_STUDENTS), len(FORWARD_STUDENTS) + 1
    # later additions come after them: the forward-pair students, then bdense-restart
    assert DEFAULT_STUDENTS[-n - later : -later] == SECANT_STUDENTS
    assert DEFAULT_STUDENTS[-later:] == (*FORWARD_STUDENTS, "bdense-restart")
    assert ExperimentConfig().methods == DEFAULT_STUDENTS
    assert ExperimentConfig.full().methods == FULL_STUDENTS
    first = DEFAULT_STUDENTS[: -n - later]
    assert first + EXTRA_STUDENTS + SECANT_STUDENTS + FORWARD_STUDENTS == FULL_STUDENTS
    for name in SECANT_STUDENTS:  # a linear twin and plain distillation at equal NFE in each
        for table in (DEFAULT_STUDENTS, FULL_STUDENTS):
            assert STUDENTS[name].linear_twin in table and paired_baseline(name) in table
    teacher, _, pools = tiny_round
    for n in (2, 4):
        spec = STUDENTS[f"bezier-quadratic-{n}-secant"]
        assert (spec.order, spec.target, spec.steps) == (2, "secant", n)
        assert spec.linear_twin == f"anchored-distill-{n}"
        loss = student_loss(spec)
        assert loss.grid_steps == n and loss.target == "secant"
        same = student_setup(STUDENTS[f"bezier-quadratic-{n}-tangent"], teacher, pools)
        setup = student_setup(spec, teacher, pools)
        assert setup.pool is same.pool  # the same pairs and guides as the other quadratic students


def test_students_of_one_round_share_their_pairs(tiny_round):
    teacher, second, pools = tiny_round
    lin = student_setup(STUDENTS["anchored-distill-2"], teacher, pools)
    quad = student_setup(STUDENTS["bezier-quadratic-2-endpoint"], teacher, pools)
    cubic = student_setup(STUDENTS["bezier-cubic-uniform"], teacher, pools, second_teacher=second)
    for other in (quad, cubic):
        assert torch.equal(lin.pool.pairs.x0, other.pool.pairs.x0)
        assert torch.equal(lin.pool.pairs.x1, other.pool.pairs.x1)
    assert len(lin.pool.pairs.guides) == 0 and len(quad.pool.pairs.guides) == 1
    assert len(cubic.pool.pairs.guides) == 2
    assert lin.source is quad.source  # generated once, its cost counted for both


def test_train_seeds_is_train_per_seed():
    source, target = get_sampler("8gaussians"), get_sampler("moons")
    cfg = TrainConfig(steps=15, batch_size=32, lr=1e-3, progress=False, device="cpu")

    def batches(n, g):
        return Pairs(source.sample(n, g), target.sample(n, g))

    models = [new_mlp(2, hidden=16, depth=2, seed=s) for s in (0, 1)]
    solo = [
        train(new_mlp(2, hidden=16, depth=2, seed=s), FlowMatchingLoss(), batches,
              TrainConfig(**{**cfg.to_dict(), "seed": seed}))
        for s, seed in ((0, 5), (1, 9))
    ]  # fmt: skip
    together = train_seeds(models, FlowMatchingLoss(), [batches, batches], cfg, [5, 9])
    for a, b in zip(solo, together, strict=True):
        np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4, atol=1e-6)
        for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    assert together[0].losses != together[1].losses  # the seeds differ
    with pytest.raises(ValueError, match="seeds must differ"):
        train_seeds(models, FlowMatchingLoss(), [batches, batches], cfg, [5, 5])


# -- held-out data ---------------------------------------------------------------------------------


@pytest.fixture()
def point_file(tmp_path) -> Path:
    pts = np.random.default_rng(0).normal(size=(500, 2)) * [2.0, 0.5]
    path = tmp_path / "mine.csv"
    np.savetxt(path, pts, delimiter=",", header="x,y", comments="")
    return path


def _rows(x: torch.Tensor) -> set[tuple[float, float]]:
    return {tuple(r) for r in x.tolist()}


def test_a_point_file_is_split_with_no_point_in_both_parts(point_file):
    train_s, held_s, info = held_out_split(str(point_file), 0.2, seed=0)
    train_rows, held_rows = _rows(train_s.points), _rows(held_s.points)
    assert info == {"name": str(point_file), "kind": "points", "train": 400, "held_out": 100}
    assert not train_rows & held_rows
    assert len(train_rows | held_rows) == 500
    named = held_out_split("moons", 0.2, seed=0)
    assert named[0] is named[1] and named[2]["kind"] == "distribution"


def test_data_anchored_x1_are_exactly_held_in_data_and_both_sides_are_measured(point_file):
    train_s, held_s, _ = held_out_split(str(point_file), 0.2, seed=0)
    teacher = new_mlp(2, hidden=16, depth=2, seed=0).eval()
    pools = PoolMaker(
        get_sampler("gaussian"), train_s, n_pairs=300, teacher_steps=4, num_branches=4, pair_seed=1
    )
    made = pools.anchored(teacher)
    x1 = _rows(made.pairs.x1)
    assert x1 <= _rows(train_s.points) and not x1 & _rows(held_s.points)
    draws = make_eval_draws(get_sampler("gaussian"), held_s, n=64, draws=2, seed=0)
    assert not _rows(torch.cat(draws.reference)) - _rows(held_s.points)  # reference: held out
    stats = evaluate_coupling(made.pairs, draws)
    assert len(stats["x0_w2"]) == len(stats["x1_w2"]) == 2
    assert all(math.isfinite(v) and v > 0 for v in stats["x0_w2"] + stats["x1_w2"])


def test_user_csv_data_runs_end_to_end(point_file, tmp_path):
    from bezkit.experiments import run_experiment

    cfg = ExperimentConfig.quick(
        pairs=[("gaussian", str(point_file))],
        seeds=2,
        rounds=1,
        methods=("rf-distill", "anchored-distill"),
        baselines=(),
        chains=("reflow",),
        flow_steps=60,
        student_steps=20,
        n_pairs=128,
        n_eval=64,
        progress=False,
    )
    results = run_experiment(cfg, tmp_path / "out")
    exp = results["experiments"][0]
    assert exp["data"]["target"]["held_out"] == 100
    assert {r["method"] for r in exp["runs"]} == {"rf-distill", "anchored-distill"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "100 held out" in report
    # n reference points are drawn from the 100 held-out ones, not "n = 64 held-out points"
    assert "n = 64 held-out points" not in report and "with replacement" in report


# -- bad options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--seeds", "0"], "training seeds must be an int >= 1"),
        (["--rounds", "0"], "reflow rounds K must be an int >= 1"),
        (["--held-out-fraction", "1.5"], "strictly between 0 and 1"),
        (["--held-out-fraction", "0"], "strictly between 0 and 1"),
        (["--chains", "reflow", "spiral"], "unknown chain kind(s) spiral"),
        (["--methods", "rf-distill", "magic"], "unknown method(s) magic"),
        (["--baselines", "ot"], "unknown baseline(s) ot"),
        (["--rounds", "1", "--student-rounds", "2"], "cannot exceed rounds"),
        (["--pair", "8gaussians:nothing"], "unknown dataset"),
        (["--pair", "moons"], "SOURCE:TARGET"),
        (["--methods", "bezier-cubic-uniform", "--baselines"], "needs the otcfm baseline"),
    ],
)
def test_bad_options_are_clear_errors_before_training(args, match, tmp_path, capsys):
    code = main(["experiment", "--quick", "--quiet", "--out", str(tmp_path / "x"), *args])
    assert code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_config_validation():
    for bad, match in (
        (dict(seeds=0), "training seeds"),
        (dict(seeds=True), "training seeds"),
        (dict(rounds=0), "K must be"),
        (dict(held_out_fraction=1.0), "strictly between"),
        (dict(chains=("loop",)), "unknown chain kind"),
        (dict(n_eval=10_000, w2="exact"), "n_eval"),
        (dict(eval_steps=(0, 1)), "eval_steps"),
        (dict(exact_methods=("bezier-quadratic-2-literal",)), "not among the methods"),
        (dict(budget_factors=()), "budget_factors"),
        (dict(budget_factors=(4, 1)), "increasing"),
        (dict(budget_factors=(0, 4)), "ints >= 1"),
        (dict(methods=(), chains=()), "nothing to run"),
    ):
        with pytest.raises(ValueError, match=match):
            ExperimentConfig(**bad).validate()
    assert ExperimentConfig.full().seeds >= 5 and ExperimentConfig.full().rounds >= 4
    assert ExperimentConfig().seeds >= 3 and ExperimentConfig().n_eval >= 4096
    assert ExperimentConfig().eval_draws >= 2


# -- the quick run ---------------------------------------------------------------------------------


def test_quick_run_writes_every_file_with_finite_numbers_and_intervals(quick_run):
    raw = json.loads((quick_run / "results.json").read_text())
    assert raw["schema_version"] == 2
    results = load_results(quick_run / "results.json")
    report = (quick_run / "report.md").read_text()
    assert report.startswith("# bezkit 2D experiment")
    for name in (
        "8gaussians-to-moons-chains.png",
        "8gaussians-to-moons-paired-differences.png",
        "8gaussians-to-moons-few-step.png",
        "8gaussians-to-moons-chain-trajectories.png",
    ):
        assert (quick_run / name).stat().st_size > 10_000
        assert f"({name})" in report
    nums = list(_numbers(results["experiments"]))
    assert nums and all(math.isfinite(v) for v in nums)
    exp = results["experiments"][0]
    assert exp["seeds"] == [0, 1] and exp["eval_draws"] == 2
    assert {r["method"] for r in exp["runs"]} == set(QUICK_STUDENTS) | {"otcfm"}
    for by_k in metric_by_k(exp).values():
        for iv in by_k.values():
            assert iv.n == 2 and iv.low <= iv.mean <= iv.high and iv.low < iv.high
    # uniform-t students have no plain-distillation comparison (uniform-t with uniform-t only)
    assert set(paired_table(exp, 1)) == set(QUICK_STUDENTS) - {
        "rf-distill",
        "rf-distill-2",
        "anchored-distill-uniform",
        "bezier-quadratic-uniform",
    }
    # two student budgets; the students of a claim are trained at both, rf-distill at the first
    assert student_budgets(exp) == [60, 240]
    long = {r["method"] for r in exp["runs"] if r["budget"]["steps"] == 240}
    assert long == set(QUICK_STUDENTS) - {"rf-distill"}
    assert set(chain_by_k(exp)) == {"reflow", "anchored", "bezier"}
    # both sides of the data-anchored pairs, and the X0 side of what each chain round makes
    assert 1 in coupling_by_k(exp, "x0_w2")["data-anchored"]
    assert all(len(c["metrics"]["reverse_x0_w2"]) == 2 for c in exp["chains"])
    for r in exp["runs"]:
        b = r["budget"]
        assert b["steps"] > 0 and b["pairs"] > 0 and b["wall_seconds"] > 0
        assert b["teacher_nfe"] == b["pairs"] * b["teacher_nfe_per_pair"]
    assert "Paired differences against plain k-RF distillation" in report
    name = "bezier-quadratic-2-secant"  # its claims: against the linear twin and distillation
    assert f"| {name} beats its linear twin anchored-distill-2 (k=1) | " in report
    assert f"| {name} beats plain distillation rf-distill-2 at equal NFE (k=1) | " in report
    assert "| bezier-forward-2-secant beats its linear twin rf-distill-2 (k=1) | " in report
    assert "beats the teacher-state control bezier-state-2-secant (k=1)" in report
    assert "bezier chain beats the anchored chain at round 2, adaptive-solver W2" in report
    assert "Holm" in report and "students, 240 steps" in report
    assert (quick_run / TRAJECTORIES_FILE).stat().st_size > 1_000
    assert " [" in report and "mean [95% t-interval]" in report
    assert "AMD" in report or "Intel" in report or "cores" in report


def test_quick_run_chains_name_their_pairs_and_reflow_straightens(quick_run):
    exp = load_results(quick_run / "results.json")["experiments"][0]
    rounds = {(c["chain"], c["k"]): c for c in exp["chains"] if c["seed"] == 0}
    assert rounds[("reflow", 1)]["trained_on"]["pairs"] == "independent"
    assert rounds[("reflow", 2)]["trained_on"]["pairs"] == "reflow pairs made by round 1"
    assert rounds[("anchored", 2)]["trained_on"]["pairs"].endswith("made by round 1")
    straight = chain_by_k(exp, "straightness")["reflow"]
    assert straight[2].mean < straight[1].mean / 3
    one_step = chain_by_k(exp, "w2_one_step")["reflow"]
    assert one_step[2].mean < one_step[1].mean  # the straighter flow is better at one step


def test_quick_run_refuses_to_overwrite(quick_run, capsys):
    assert main(["experiment", "--quick", "--quiet", "--out", str(quick_run)]) == 2
    assert "exists" in capsys.readouterr().err


# -- redrawing a finished run ----------------------------------------------------------------------


def _copy_run(src: Path, dst: Path) -> dict[str, bytes]:
    dst.mkdir()
    files = {p.name: p.read_bytes() for p in src.iterdir() if not p.name.startswith(".")}
    for name, data in files.items():
        (dst / name).write_bytes(data)
    return files


def test_redraw_rewrites_the_report_and_every_figure_from_the_files(quick_run, tmp_path, capsys):
    """``--redraw DIR`` needs only results.json and the trajectories: deleted figures and report
    come back byte for byte as the run drew them, nothing else changes."""
    folder = tmp_path / "run"
    before = _copy_run(quick_run, folder)
    figures = [n for n in before if n.endswith(".png")]
    assert len(figures) == 4 and "report.md" in before
    for name in [*figures, "report.md"]:
        (folder / name).unlink()
    assert main(["experiment", "--redraw", str(folder)]) == 0
    assert "rewrote" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}
    assert after.keys() == before.keys()
    for name, data in before.items():
        assert after[name] == data, name
    assert not list(folder.glob(".bezkit-draw-*"))  # no temporary folder left behind
    exp = load_results(folder / "results.json")["experiments"][0]
    paths = load_trajectories(folder / TRAJECTORIES_FILE, 1)[0]
    assert set(paths) == {(c, k) for c in ("reflow", "anchored", "bezier") for k in (1, 2)}
    assert all(p.shape[1:] == (100, 2) for p in paths.values())
    assert exp["seeds"] == [0, 1]


def test_redraw_refuses_a_folder_without_results(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["experiment", "--redraw", str(missing)]) == 2
    assert "has no results.json" in capsys.readouterr().err
    assert not missing.exists()  # nothing created
    (tmp_path / "empty").mkdir()
    assert main(["experiment", "--redraw", str(tmp_path / "empty")]) == 2
    assert "has no results.json" in capsys.readouterr().err
    assert list((tmp_path / "empty").iterdir()) == []
    # --redraw runs nothing: not together with a run's size
    assert main(["experiment", "--quick", "--redraw", str(tmp_path / "empty")]) == 2
    assert "--redraw: not allowed with argument --quick" in capsys.readouterr().err


def test_redraw_refuses_trajectories_that_do_not_match(quick_run, tmp_path, capsys):
    folder = tmp_path / "run"
    before = _copy_run(quick_run, folder)
    with np.load(folder / TRAJECTORIES_FILE) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["e0-reflow-k1"][0] += 1.0  # no longer starts at the stored points
    np.savez(folder / TRAJECTORIES_FILE, **arrays)
    assert main(["experiment", "--redraw", str(folder)]) == 2
    assert "does not start at the stored starting points" in capsys.readouterr().err
    for name in ("report.md", "8gaussians-to-moons-chains.png"):
        assert (folder / name).read_bytes() == before[name]  # nothing rewritten


def test_a_failure_while_drawing_leaves_the_old_files(quick_run, tmp_path, monkeypatch):
    from bezkit.experiments import run as run_module

    folder = tmp_path / "run"
    before = _copy_run(quick_run, folder)

    def broken(results, paths, out_dir):
        (Path(out_dir) / "8gaussians-to-moons-chains.png").write_bytes(b"half a figure")
        raise RuntimeError("the drawing failed")

    monkeypatch.setattr(run_module, "write_figures", broken)
    with pytest.raises(RuntimeError, match="the drawing failed"):
        run_module.rewrite_report(folder)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}
    assert after == before
    assert not list(folder.glob(".bezkit-draw-*"))


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("wall_seconds", "date")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def test_pairs_in_processes_give_the_numbers_of_one_process(tmp_path):
    from bezkit.experiments import run_experiment

    cfg = ExperimentConfig.quick(
        pairs=[("8gaussians", "moons"), ("gaussian", "checkerboard")],
        rounds=2,
        methods=("rf-distill", "anchored-distill-2", "bezier-quadratic-2-secant"),
        baselines=(),
        flow_steps=40,
        round_steps=20,
        student_steps=20,
        n_pairs=128,
        n_eval=128,
        many_steps=8,
        progress=False,
    )
    one = run_experiment(cfg, tmp_path / "one", command="x")
    two = run_experiment(cfg, tmp_path / "two", command="x", jobs=2)
    assert [e["target"] for e in two["experiments"]] == ["moons", "checkerboard"]
    assert _without_times(one["experiments"]) == _without_times(two["experiments"])
    for name in ("results.json", TRAJECTORIES_FILE):
        a, b = (tmp_path / "one" / name), (tmp_path / "two" / name)
        assert a.stat().st_size > 0 and b.stat().st_size > 0
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        run_experiment(cfg, tmp_path / "three", jobs=0)


def test_results_json_keeps_every_claim_with_raw_and_holm_p_values(quick_run, tmp_path):
    """Issue 16: results.json carries the claims (raw interval and p, Holm p, verdict per student
    budget, answer), and they are what the per-seed records beside them give."""
    from bezkit.experiments.claims import claims, claims_record
    from bezkit.experiments.run import rewrite_report
    from bezkit.experiments.statistics import holm

    results = json.loads((quick_run / "results.json").read_text())
    exp = results["experiments"][0]
    kept = exp["claims"]
    assert kept == json.loads(json.dumps(claims_record(exp)))  # recomputed from the records
    assert {c["family"] for c in kept} == {"students", "chains"}
    budgets = {b["budget"] for c in kept if c["family"] == "students" for b in c["by_budget"]}
    assert budgets == {60, 240}  # both student budgets of --quick
    for family, budget in [("students", 60), ("students", 240), ("chains", None)]:
        rows = [
            b
            for c in kept
            if c["family"] == family
            for b in c["by_budget"]
            if b["budget"] == budget
        ]
        assert rows, (family, budget)
        # one Holm family per column, adjusted as by hand
        assert [r["p_holm"] for r in rows] == pytest.approx(holm([r["p"] for r in rows]))
        for r in rows:
            assert r["p"] <= r["p_holm"] <= 1.0 and r["low"] <= r["mean"] <= r["high"]
    answers = {c["label"]: c["answer"] for c in kept}
    assert answers == {c.label: c.answer for c in claims(exp)}
    # a run saved before the claims were kept gains them on --redraw, every number unchanged
    old = tmp_path / "old"
    old.mkdir()
    for f in quick_run.iterdir():
        if f.is_file():
            (old / f.name).write_bytes(f.read_bytes())
    stripped = json.loads((old / "results.json").read_text())
    del stripped["experiments"][0]["claims"]
    (old / "results.json").write_text(json.dumps(stripped))
    rewrite_report(old)
    assert json.loads((old / "results.json").read_text()) == results
