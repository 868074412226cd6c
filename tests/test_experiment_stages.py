"""A pair's units of work: kept durably as they finish, resumed stage by stage, run in worker
processes, and never changing a number (issue 17, item 10; issue 16's time budget)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bezkit.cli import main
from bezkit.cli.common import jobs_count
from bezkit.executor import auto_jobs
from bezkit.experiments import pair_context, pair_units
from bezkit.experiments import run as run_module
from bezkit.experiments.claims import claims_record
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.stage_store import StageStore, paths_to_tensors, tensors_to_paths
from bezkit.experiments.staging import Staging, stage_folder
from bezkit.experiments.toy2d import count_trainings, pair_waves, run_pair
from bezkit.methods.flow import new_mlp

REPO = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> ExperimentConfig:
    """Every kind of unit, as small as it gets: 2 seeds, 3 rounds, students at 2 rounds and 2
    budgets, both baselines (the cubic student needs the OT-CFM teacher)."""
    base = dict(
        seeds=2,
        rounds=3,
        student_rounds=2,
        methods=("rf-distill", "rf-distill-2", "bezier-quadratic-2-secant", "bdense-restart"),
        baselines=("otcfm", "full-ot"),
        hidden=16,
        flow_steps=20,
        baseline_steps=10,
        round_steps=8,
        student_steps=6,
        n_pairs=64,
        teacher_steps=4,
        n_eval=64,
        eval_draws=1,
        many_steps=4,
        n_projections=16,
        full_ot_points=32,
        progress=False,
    )
    base.update(overrides)
    return ExperimentConfig.quick(**base)


def _strip(obj):
    """A pair's record without its timings, in its JSON form (everything else must be equal)."""

    def drop(o):
        if isinstance(o, dict):
            return {k: drop(v) for k, v in o.items() if k not in ("wall_seconds", "paths")}
        if isinstance(o, list):
            return [drop(v) for v in o]
        return o

    return json.loads(json.dumps(drop(obj)))


def _same_paths(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference():
    """The tiny configuration's pair, run in this process with nothing kept on disk."""
    torch.set_num_threads(1)
    return run_pair("8gaussians", "moons", tiny())


# -- the store ---------------------------------------------------------------------------------


def test_a_stage_comes_back_bit_for_bit_and_only_for_its_own_run(tmp_path):
    store = StageStore(tmp_path, "run-a")
    models = [new_mlp(2, hidden=8, depth=2, seed=s) for s in (0, 1)]
    paths = {("reflow", 2): torch.randn(3, 5, 2), ("bezier", 1): torch.randn(3, 5, 2)}
    store.save(
        "chain-reflow-2",
        {"chains": [{"w2": 0.1 + 0.2, "k": (1, 2)}]},
        tensors=paths_to_tensors(paths),
        models={"model": models},
    )
    stage = store.load("chain-reflow-2")
    assert stage is not None
    assert stage.record == {"chains": [{"w2": 0.1 + 0.2, "k": [1, 2]}]}  # its JSON form
    assert _same_paths(tensors_to_paths(stage.tensors), paths)
    for mine, loaded in zip(models, stage.models["model"], strict=True):
        for (name, a), (name_b, b) in zip(
            mine.state_dict().items(), loaded.state_dict().items(), strict=True
        ):
            assert name == name_b and torch.equal(a, b)
    x, t = torch.randn(7, 2), torch.rand(7)
    assert torch.equal(models[1](x, t), stage.models["model"][1](x, t))
    assert store.finished() == ["chain-reflow-2"]
    assert store.has("chain-reflow-2") and not store.has("chain-reflow-3")
    assert not StageStore(tmp_path, "run-b").has("chain-reflow-2")
    assert StageStore(tmp_path, "run-b").load("chain-reflow-2") is None  # another run's
    assert StageStore(tmp_path, "run-b").finished() == []


def test_a_stage_killed_before_its_record_is_not_finished(tmp_path, monkeypatch):
    store = StageStore(tmp_path, "run")
    from bezkit.experiments import stage_store

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # between the weights and the record

    monkeypatch.setattr(stage_store, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        store.save("flow-1rf", {"budget": []}, models={"model": [new_mlp(2, hidden=8)]})
    assert (tmp_path / "flow-1rf.safetensors").exists()
    assert store.load("flow-1rf") is None and store.finished() == []
    assert not store.has("flow-1rf")


@pytest.mark.parametrize("key", ["", "Flow", "../x", "a/b", "-x"])
def test_a_bad_stage_key_is_refused(tmp_path, key):
    with pytest.raises(ValueError, match="bad stage key"):
        StageStore(tmp_path, "run").save(key, {})


def test_the_memory_store_keeps_stages_for_its_own_lifetime():
    store = StageStore(None, "run")
    assert store.load("round-1") is None
    store.save("round-1", {"chains": {}})
    assert store.load("round-1").record == {"chains": {}} and store.finished() == ["round-1"]


# -- waves -------------------------------------------------------------------------------------


def test_every_unit_needs_only_units_of_earlier_waves():
    cfg = tiny(chains=("anchored", "bezier"))  # reflow still trained: the students' teachers
    waves = pair_waves(cfg)
    seen: set[str] = set()
    for wave in waves:
        for unit in wave:
            needs = {
                "flow": set(),
                "baseline": set(),
                "round-1": {"flow-1rf"},
                "chain": {"flow-1rf"},
                "student": {pair_context.teacher_key(unit.k), "baseline-otcfm"},
            }[unit.kind]
            assert needs <= seen, (unit, seen)
        seen |= {u.key for u in wave}
    trained = sum(u.trainings(cfg) for wave in waves for u in wave) * cfg.seeds
    assert trained == count_trainings(cfg)
    chains = [u for u in waves[1] if u.kind == "chain"]
    assert [(u.name, u.k) for u in chains] == [("reflow", 2), ("anchored", 3), ("bezier", 3)]


# -- the numbers do not depend on where or when a unit runs ----------------------------------------


def test_worker_processes_give_the_numbers_of_one_process(reference):
    result = run_pair("8gaussians", "moons", tiny(), jobs=2)
    assert _strip(result) == _strip(reference)
    assert _same_paths(result["paths"], reference["paths"])


def test_an_interrupted_pair_continues_from_its_finished_stages(reference, tmp_path, monkeypatch):
    store = StageStore(tmp_path / "stages", "run")
    real_train = pair_context.PairContext.train
    trained: list[str] = []

    def train_then_interrupt(self, stage, models, loss, batches, steps, desc):
        if len(trained) == 6:
            raise KeyboardInterrupt
        trained.append(desc)
        return real_train(self, stage, models, loss, batches, steps, desc)

    monkeypatch.setattr(pair_context.PairContext, "train", train_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_pair("8gaussians", "moons", tiny(), store=store)
    kept = store.finished()
    assert len(kept) == 6 and "flow-1rf" in kept  # every stage before the interrupt, kept

    again: list[str] = []

    def counting(self, stage, models, loss, batches, steps, desc):
        again.append(desc)
        return real_train(self, stage, models, loss, batches, steps, desc)

    monkeypatch.setattr(pair_context.PairContext, "train", counting)
    result = run_pair("8gaussians", "moons", tiny(), store=StageStore(store.root, "run"))
    assert "round-1" not in kept  # (it trains nothing: every kept stage is one training)
    assert not set(again) & set(trained)  # nothing finished is trained again
    assert len(again) == count_trainings(tiny()) // 2 - len(kept)
    assert _strip(result) == _strip(reference)
    assert _same_paths(result["paths"], reference["paths"])


def test_sigkill_in_the_middle_of_a_pair_then_resume(tmp_path):
    """The default run has one pair: a kill half-way through it keeps the finished stages, and
    `bezkit experiment --resume` continues from them to the numbers of an uninterrupted run."""
    cfg = tiny(pairs=[("8gaussians", "moons")])
    out = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import json, os, signal
        from bezkit.experiments import run as run_module, stage_store
        from bezkit.experiments.config import ExperimentConfig
        run_module.write_figures = lambda results, paths, out: []
        from bezkit.experiments.staging import config_from_dict
        cfg = config_from_dict(json.loads({json.dumps(cfg.to_dict())!r}))
        save = stage_store.StageStore.save
        count = []
        def save_then_die(self, key, *args, **kwargs):
            stage = save(self, key, *args, **kwargs)
            count.append(key)
            if len(count) == 7:
                os.kill(os.getpid(), signal.SIGKILL)
            return stage
        stage_store.StageStore.save = save_then_die
        run_module.run_experiment(cfg, {str(out)!r}, command="killed", jobs=1)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    staging = Staging.find(out)
    assert staging is not None and staging.finished() == []
    assert len(staging.stage_store(0).finished()) == 7
    assert staging.finished_stages() == 7

    counted: list[str] = []
    real_train = pair_context.PairContext.train

    def counting(self, stage, models, loss, batches, steps, desc):
        counted.append(desc)
        return real_train(self, stage, models, loss, batches, steps, desc)

    mp = pytest.MonkeyPatch()
    mp.setattr(pair_context.PairContext, "train", counting)
    mp.setattr(run_module, "write_figures", lambda results, paths, out: [])
    try:
        assert main(["experiment", "--resume", str(out), "--quiet"]) == 0
    finally:
        mp.undo()
    assert len(counted) == count_trainings(cfg) // cfg.seeds - 7  # 7 stages, 7 trainings
    assert Staging.find(out) is None and not stage_folder(staging.root, 0).exists()
    direct = run_pair("8gaussians", "moons", cfg)
    results = json.loads((out / "results.json").read_text())["experiments"][0]
    assert results.pop("claims") == _strip(claims_record(direct))  # read from the same numbers
    assert _strip(results) == _strip(direct)


# -- --jobs ------------------------------------------------------------------------------------


def test_jobs_auto_is_the_usable_cores_at_most_the_cap(monkeypatch):
    from bezkit import executor

    monkeypatch.setattr(executor, "AUTO_JOBS_MAX", 2)
    monkeypatch.setattr(executor.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4})
    assert auto_jobs() == 2 and jobs_count("auto") == 2 and jobs_count("3") == 3
    monkeypatch.setattr(executor.os, "sched_getaffinity", lambda pid: {7})
    assert auto_jobs() == 1
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(Exception, match="an integer >= 1 or 'auto'"):
            jobs_count(bad)


# -- stage keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "names"),
    [
        ("baselines", ("otcfm", "full-ot", "otcfm")),
        ("chains", ("anchored", "anchored")),
        ("methods", ("rf-distill", "bdense", "rf-distill")),
    ],
)
def test_a_name_given_twice_is_refused(option, names):
    """Each name is one stage of a pair (``baseline-otcfm``, ``chain-anchored-2``, ...): before,
    ``baselines=("otcfm", "otcfm")`` stored one stage under both and gave other numbers than the
    sequential run (which trained the second with its own seeds)."""
    with pytest.raises(ValueError, match=rf"{names[0]} given more than once \(--{option}\)"):
        tiny(**{option: names}).validate()


def test_the_command_line_refuses_a_baseline_given_twice(tmp_path, cli_error):
    out = tmp_path / "run"
    # small sizes: without the check this runs (and fails) in seconds
    argv = ["experiment", "--quick", "--quiet", "--seeds", "1", "--rounds", "1"]
    argv += ["--methods", "rf-distill", "--n-pairs", "64", "--n-eval", "64"]
    argv += ["--flow-steps", "5", "--baseline-steps", "5", "--student-steps", "5"]
    line = cli_error([*argv, "--baselines", "otcfm", "otcfm", "--out", str(out)])
    assert "otcfm given more than once (--baselines)" in line
    assert not out.exists()


def test_every_stage_key_of_every_name_is_valid(tmp_path):
    """Every student, baseline and chain name makes a key the store accepts, and no two units of
    the full protocol share a key."""
    from bezkit.experiments.config import CHAIN_KINDS
    from bezkit.experiments.protocol import BASELINE_METHODS, STUDENTS

    cfg = tiny(
        methods=tuple(STUDENTS),
        baselines=BASELINE_METHODS,
        chains=CHAIN_KINDS,
        rounds=4,
        student_rounds=4,
        budget_factors=(1, 2, 4),
    )
    cfg.validate()
    units = [u for wave in pair_waves(cfg) for u in wave]
    keys = [u.key for u in units]
    assert len(set(keys)) == len(keys)
    store = StageStore(tmp_path, "run")
    for key in keys:
        store.save(key, {})
    assert sorted(store.finished()) == sorted(keys)


def test_a_run_that_fits_only_without_workers_is_told_to_use_fewer_jobs(
    tmp_path, cli_error, monkeypatch
):
    """``--jobs 2`` triples the memory estimate (this process and two workers): a size that one
    process can run but three cannot is refused with the way out that keeps the size,
    ``--jobs 1``."""
    from bezkit.training import memory

    gib = 2**30
    monkeypatch.setattr(
        "bezkit.cli.experiment.estimate_experiment_bytes", lambda **sizes: {"--n-eval": 10 * gib}
    )
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 25 * gib)  # 1 x fits, 3 x not
    out = tmp_path / "q"
    line = cli_error(["experiment", "--quick", "--quiet", "--jobs", "2", "--out", str(out)])
    assert "30.0 GiB" in line and "in 2 workers" in line
    assert "smaller --n-eval" in line and "--jobs 1" in line
    assert not out.exists()


def test_a_worker_takes_its_parents_evaluation_draws(tmp_path, monkeypatch, reference):
    """A worker's context gets the parent's draws instead of making them again (with exact W2
    their noise floors cost more than many units: each worker of each wave paid them again);
    the unit's numbers are those of one process."""
    cfg = tiny()
    parent = pair_context.PairContext("8gaussians", "moons", cfg, StageStore(tmp_path, "run"))
    for unit in (pair_context.Unit("flow"), pair_context.Unit("baseline", "otcfm")):
        pair_units.run_unit_here(parent, unit)

    def no_draws(*args, **kwargs):
        raise AssertionError("the worker made its own evaluation draws")

    monkeypatch.setattr(pair_context, "make_eval_draws", no_draws)
    monkeypatch.setattr(pair_units, "_CONTEXTS", {})
    unit = pair_context.Unit("student", "rf-distill", 1, 0)
    key = pair_units.run_unit(
        "8gaussians", "moons", cfg, str(tmp_path), "run", unit, 1, parent.draws
    )
    stage = StageStore(tmp_path, "run").load(key, models=False)
    assert stage is not None
    expected = [r for r in reference["runs"] if r["method"] == "rf-distill" and r["k"] == 1]
    assert _strip(stage.record["runs"]) == _strip(expected[: cfg.seeds])


def test_the_callers_progress_bar_is_advanced_whatever_its_total():
    """``run_pair(..., bar)`` advances the caller's bar (before: ``bar or tqdm(...)`` raised a
    TypeError for a bar without a total and replaced one whose count was 0)."""
    import io

    from tqdm.auto import tqdm

    cfg = tiny(seeds=1, rounds=1, student_rounds=1, methods=("rf-distill",), baselines=())
    bar = tqdm(file=io.StringIO())  # no total
    run_pair("8gaussians", "moons", cfg, bar)
    assert bar.n == count_trainings(cfg) == 2


def test_a_new_run_over_an_interrupted_one_counts_its_finished_stages(tmp_path):
    """The default run has one pair: interrupted half-way it has no finished pair but finished
    stages, which ``--overwrite`` would discard; the refusal says so."""
    cfg = tiny()
    out = tmp_path / "run"
    staging = Staging.create(out, cfg, command="interrupted", n_units=1)
    staging.stage_store(0).save("flow-1rf", {"budget": []})
    staging.stage_store(0).save("baseline-otcfm", {"runs": []})
    with pytest.raises(FileExistsError, match=r"0 finished pair\(s\) and 2 finished stage\(s\)"):
        run_module.run_experiment(cfg, out)
