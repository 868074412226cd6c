"""bezkit.lessons: the lesson checkpoints (regenerated to within a cross-machine tolerance, loaded
when present, trained when absent) and the results.json -> plain dicts helpers of lessons 05 and
the experiment figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import bezkit.lessons as L
from bezkit.methods import new_mlp
from bezkit.training import TrainResult
from bezkit.training.model_io import load_model, save_model

COMMITTED = Path(__file__).resolve().parents[1] / "data" / "checkpoints"

# -- a synthetic results.json ---------------------------------------------------------------------


def _run(method: str, k: int, base: float) -> dict:
    w2 = {"1": base, "2": base * 0.8, "100": base * 0.5}
    return {
        "method": method,
        "k": k,
        "train_seconds": 1.0 + k,
        "final_loss": 0.1 * k,
        "metrics": {
            "w2": w2,
            "nfe": {"1": 1, "2": 2, "100": 100},
            "straightness": base / 10,
            "normalised_straightness": base / 20,
            "curvature": base / 10,
            "transport_cost": 1.0,
            "path_energy": 1.1,
            "crossing_pairs": int(base * 100),
            "crossing_fraction": base / 100,
            "crossings_per_trajectory": base,
        },
    }


def make_experiment(source: str = "8gaussians", target: str = "moons", shift: float = 0.0) -> dict:
    runs = [_run("otcfm", 1, 0.4 + shift), _run("full-ot", 1, 0.35 + shift)]
    for k in (1, 2):
        runs += [
            _run("rf", k, 1.5 / k + shift),
            _run("rf-distill", k, 0.6 + 0.01 * k + shift),
            _run("bezier-quadratic", k, 0.55 + 0.02 * k + shift),
        ]
    couplings = [
        {"coupling": "independent", "k": 1, "endpoint_w2": 0.15, "transport_cost": 8.0,
         "segment_crossing_fraction": 0.25},
        {"coupling": "reflow", "k": 2, "endpoint_w2": 0.5, "transport_cost": 0.6,
         "segment_crossing_fraction": 0.003},
        {"coupling": "data-anchored", "k": 1, "endpoint_w2": 0.12, "transport_cost": 0.6,
         "segment_crossing_fraction": 0.004},
    ]  # fmt: skip
    return {
        "source": source,
        "target": target,
        "noise_floor": 0.2,
        "noise_floor_std": 0.05,
        "noise_floor_samples": [0.15, 0.2, 0.25],
        "runs": runs,
        "couplings": couplings,
        "wall_seconds": 10.0,
    }


def make_results(n: int = 1) -> dict:
    exps = [make_experiment(), make_experiment("gaussian", "moons", shift=0.1)][:n]
    return {"command": "bezkit experiment --test", "config": {"rounds": 2}, "experiments": exps}


# -- checkpoints ----------------------------------------------------------------------------------


# Cross-machine tolerances for a retrained lesson checkpoint. Float kernels differ between CPUs
# (AVX2 / AVX-512, thread counts), so bitwise equality holds only on the machine that made the
# files. Measured with ATen's portable kernels (ATEN_CPU_CAPABILITY=default) against the committed
# AVX2 run: largest relative tensor difference 5.1e-4, largest velocity difference 0.0067 (of
# |v| <= 6.3), largest per-step loss difference 5.7e-5. The bounds below leave a 20-40x margin; a
# real regression (another seed, lr, loss or time sampling) changes the weights by O(1).
REGEN_TENSOR_RTOL = 2e-2
REGEN_VELOCITY_ATOL = 0.15
REGEN_LOSS_ATOL = 2e-3


def test_regenerating_the_1rf_gives_the_committed_tensors(tmp_path, single_thread):
    committed = COMMITTED / f"{L.checkpoint_name(1)}.safetensors"
    if not committed.exists():
        pytest.skip("no committed lesson checkpoint (run scripts/make_lesson_checkpoints.py)")
    (path,) = L.make_lesson_checkpoints(tmp_path, rounds=1, verbose=False)
    fresh, old = load_file(path), load_file(committed)
    assert fresh.keys() == old.keys()
    for name in old:
        assert fresh[name].shape == old[name].shape and fresh[name].dtype == old[name].dtype
        gap = float((fresh[name] - old[name]).norm() / old[name].norm().clamp_min(1e-12))
        assert gap < REGEN_TENSOR_RTOL, (name, gap)
    # the velocity fields agree where it matters
    new_model, meta_new = load_model(path)
    old_model, meta_old = load_model(committed)
    g = torch.Generator().manual_seed(0)
    x, t = 2 * torch.randn(2000, 2, generator=g), torch.rand(2000, generator=g)
    with torch.no_grad():
        gap = float((new_model(x, t) - old_model(x, t)).abs().max())
    assert gap < REGEN_VELOCITY_ATOL, gap
    assert meta_new["recipe"] == meta_old["recipe"]
    assert len(meta_new["losses"]) == len(meta_old["losses"])
    torch.testing.assert_close(
        torch.tensor(meta_new["losses"]), torch.tensor(meta_old["losses"]),
        rtol=0, atol=REGEN_LOSS_ATOL,
    )  # fmt: skip


def test_committed_checkpoints_load_and_are_small():
    files = sorted(COMMITTED.glob("8gaussians-moons-*rf.safetensors"))
    if not files:
        pytest.skip("no committed lesson checkpoints")
    assert [f.stem for f in files] == [L.checkpoint_name(k) for k in (1, 2, 3)]
    total = sum(f.stat().st_size + f.with_suffix(".json").stat().st_size for f in files)
    assert total < 3 * 2**20
    for f in files:
        model, meta = load_model(f)
        assert meta["recipe"]["pair"] == list(L.LESSON_PAIR)
        assert model(torch.zeros(3, 2), torch.zeros(3)).shape == (3, 2)


class _Calls:
    """Fast stand-ins for the two training recipes that record their calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def rf1(self, seed: int = 0) -> TrainResult:
        self.calls.append(1)
        model = new_mlp(2, hidden=8, depth=1, seed=seed)
        return TrainResult(model=model, ema_model=None, losses=[1.0, 0.5])

    def reflow(self, previous, k: int, seed: int = 0):
        self.calls.append(k)
        model = new_mlp(2, hidden=8, depth=1, seed=seed + k)
        result = TrainResult(model=model, ema_model=None, losses=[0.3])
        return L.ReflowRound(k=k, model=model, pairs=None, result=result)


@pytest.fixture
def fake_training(monkeypatch) -> _Calls:
    calls = _Calls()
    monkeypatch.setattr(L, "train_lesson_1rf", calls.rf1)
    monkeypatch.setattr(L, "train_lesson_reflow", calls.reflow)
    return calls


def test_lesson_flows_loads_when_present_and_trains_otherwise(tmp_path, fake_training, capsys):
    flows = L.lesson_flows(tmp_path, rounds=2)  # nothing there: both trained
    assert fake_training.calls == [1, 2]
    assert set(flows) == {1, 2}
    assert "trained the 1-RF" in capsys.readouterr().out
    save_model(tmp_path / L.checkpoint_name(1), flows[1], {})
    save_model(tmp_path / L.checkpoint_name(2), flows[2], {})
    fake_training.calls.clear()
    loaded = L.lesson_flows(tmp_path, rounds=2)
    assert fake_training.calls == []
    assert "loaded the 2-RF" in capsys.readouterr().out
    for k in (1, 2):
        for a, b in zip(
            loaded[k].state_dict().values(), flows[k].state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)
    L.lesson_flows(tmp_path, rounds=2, retrain=True, verbose=False)
    assert fake_training.calls == [1, 2]


def test_a_retrained_teacher_retrains_the_later_rounds(tmp_path, fake_training):
    save_model(tmp_path / L.checkpoint_name(2), new_mlp(2, hidden=8, depth=1), {})
    L.lesson_flows(tmp_path, rounds=2, verbose=False)  # 1-RF absent: the 2-RF file is not used
    assert fake_training.calls == [1, 2]
    with pytest.raises(ValueError, match="rounds"):
        L.lesson_flows(tmp_path, rounds=0)


def test_make_lesson_checkpoints_writes_recipes_and_refuses_to_overwrite(tmp_path, fake_training):
    paths = L.make_lesson_checkpoints(tmp_path, rounds=2, verbose=False)
    assert [p.name for p in paths] == [f"{L.checkpoint_name(k)}.safetensors" for k in (1, 2)]
    _, meta = load_model(paths[1])
    assert meta["recipe"]["teacher"] == L.checkpoint_name(1)
    assert meta["recipe"]["reflow_round"] == {
        "k": 2, "n_pairs": 5000, "teacher_steps": 100, "pair_seed": 2
    }  # fmt: skip
    assert meta["losses"] == [0.3]
    with pytest.raises(FileExistsError):
        L.make_lesson_checkpoints(tmp_path, rounds=1, verbose=False)
    L.make_lesson_checkpoints(tmp_path, rounds=1, overwrite=True, verbose=False)


def test_recipes_match_the_readme():
    rf1 = L.rf1_config()
    assert (rf1.steps, rf1.batch_size, rf1.lr, rf1.seed, rf1.ema_decay) == (
        2000,
        256,
        3e-3,
        0,
        None,
    )
    r3 = L.reflow_config(3)
    assert (r3.steps, r3.batch_size, r3.lr, r3.seed) == (800, 256, 1e-3, 3)
    assert L.checkpoint_name(2) == "8gaussians-moons-2rf"


def test_the_script_regenerates_into_a_folder(tmp_path, fake_training):
    import runpy

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_lesson_checkpoints.py"
    module = runpy.run_path(str(script))  # defines main() without running it
    assert module["main"](["--out", str(tmp_path), "--rounds", "1"]) == 0
    assert (tmp_path / f"{L.checkpoint_name(1)}.json").exists()


# -- results.json helpers -------------------------------------------------------------------------


def test_metric_by_k_is_the_figures_series():
    exp = make_experiment()
    series = L.metric_by_k(exp, "w2", 1)
    assert list(series) == ["rf", "rf-distill", "bezier-quadratic"]  # no baselines
    assert series["rf"] == {1: 1.5, 2: 0.75}
    assert L.metric_by_k(exp, "w2")["rf"] == {1: 0.75, 2: 0.375}  # default: the most steps
    assert L.metric_by_k(exp, "straightness")["rf"][1] == pytest.approx(0.15)
    assert L.metric_by_k(exp, "train_seconds")["rf"] == {1: 2.0, 2: 3.0}
    assert L.metric_by_k(exp, lambda r: r["k"] * 10)["rf-distill"] == {1: 10, 2: 20}
    assert list(L.metric_by_k(exp, "w2", 1, methods=["bezier-quadratic", "rf", "nope"])) == [
        "bezier-quadratic",
        "rf",
    ]
    with_base = L.metric_by_k(exp, "w2", 1, baselines=True)
    assert with_base["otcfm"] == {1: 0.4}
    # a results dict with one experiment works too
    assert L.metric_by_k(make_results(1), "w2", 1) == series


def test_metric_errors_are_clear():
    exp = make_experiment()
    with pytest.raises(KeyError, match="not evaluated at 7"):
        L.metric_by_k(exp, "w2", 7)
    with pytest.raises(KeyError, match="unknown metric"):
        L.metric_by_k(exp, "fid")
    with pytest.raises(ValueError, match="select_experiment"):
        L.metric_by_k(make_results(2), "w2", 1)
    with pytest.raises(KeyError, match="8gaussians -> moons, gaussian -> moons"):
        L.select_experiment(make_results(2), "spirals")
    with pytest.raises(ValueError, match="experiments"):
        L.experiments({"something": 1})


def test_selecting_and_listing_experiments():
    res = make_results(2)
    assert [L.experiment_label(e) for e in L.experiments(res)] == [
        "8gaussians -> moons",
        "gaussian -> moons",
    ]
    assert L.select_experiment(res, "gaussian")["source"] == "gaussian"
    assert L.select_experiment(res, target="moons")["source"] == "8gaussians"
    exp = L.select_experiment(res, "gaussian")
    assert L.step_counts(exp) == [1, 2, 100]
    assert L.methods_of(exp) == ["rf", "rf-distill", "bezier-quadratic", "otcfm", "full-ot"]
    assert L.methods_of(exp, baselines=False)[-1] == "bezier-quadratic"


def test_baselines_curves_couplings_and_tables():
    exp = make_experiment()
    assert L.baseline_values(exp, "w2", 1) == {"otcfm": 0.4, "full-ot": 0.35}
    assert L.baseline_values(exp, "crossings_per_trajectory") == {"otcfm": 0.4, "full-ot": 0.35}
    curves = L.w2_by_steps(exp)
    assert list(curves) == [
        "rf (k=2)",
        "rf-distill (k=2)",
        "bezier-quadratic (k=2)",
        "otcfm (k=1)",
        "full-ot (k=1)",
    ]
    assert curves["rf (k=2)"] == pytest.approx({1: 0.75, 2: 0.6, 100: 0.375})
    assert list(L.w2_by_steps(exp, 1, methods=["rf"], baselines=False)) == ["rf (k=1)"]
    assert L.coupling_by_k(exp) == {
        "independent": {1: 0.15},
        "reflow": {2: 0.5},
        "data-anchored": {1: 0.12},
    }
    assert L.coupling_by_k(exp, "transport_cost")["independent"] == {1: 8.0}
    table = L.error_table(exp)  # recomputed by the report's function
    assert table[2]["training endpoints"] == 0.5
    assert table[1]["k-RF @1"] == 1.5 and table[1]["k-RF @100"] == 0.75
    stored = {**exp, "error_accumulation": {"2": {"a": 1.0}, "1": {"a": 2.0}}}
    assert L.error_table(stored) == {1: {"a": 2.0}, 2: {"a": 1.0}}
    text = L.format_table({1: {"a": 0.12345, "b": 2.0}, 2: {"a": 1.0}}, digits=2)
    assert text.splitlines() == ["| k | a | b |", "| --- | --- | --- |", "| 1 | 0.12 | 2.00 |",
                                 "| 2 | 1.00 |  |"]  # fmt: skip


def test_load_results_and_the_fallback(tmp_path, monkeypatch, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(make_results(2)))
    assert len(L.load_results(path)["experiments"]) == 2
    assert len(L.lesson_results(path)["experiments"]) == 2
    assert "loaded results.json" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a bezkit experiment"):
        L.load_results(tmp_path / "bad.json")
    seen = {}

    def fake_quick(cfg=None):
        seen["cfg"] = cfg
        return {**make_results(1), "command": "quick", "wall_seconds": 1.0}

    monkeypatch.setattr(L, "quick_results", fake_quick)
    out = L.lesson_results(tmp_path / "absent.json", config="CFG")
    assert out["command"] == "quick" and seen["cfg"] == "CFG"
    assert "not found" in capsys.readouterr().out


def test_quick_config_is_small_and_valid():
    cfg = L.quick_config()
    cfg.validate()
    assert cfg.pairs == [("8gaussians", "moons")] and cfg.rounds == 2
    assert cfg.flow_steps <= 500 and cfg.round_steps <= 200 and not cfg.progress
    assert L.quick_config(rounds=3).rounds == 3


def test_figures_use_metric_by_k(tmp_path):
    pytest.importorskip("matplotlib")
    from bezkit.experiments.figures import write_figures

    exp = make_experiment()
    g = torch.Generator().manual_seed(0)
    exp["paths"] = {(r["method"], r["k"]): torch.randn(3, 4, 2, generator=g) for r in exp["runs"]}
    names = write_figures(exp, tmp_path)
    assert len(names) == 4 and all((tmp_path / n).exists() for n in names)
