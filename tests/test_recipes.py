"""The recipe contract of ``bezkit.methods``: one result type, one argument order, config objects.

Every recipe returns a ``RecipeResult`` whose ``model`` is the model to sample with (the EMA weights
when EMA is on, the trained ones when off), takes ``(start, data, train, method_config)`` with its
runtime options keyword-only, and refuses a bad config value with an error naming the field.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bezkit.couplings import IndependentCoupling, PairPool, ReflowCoupling
from bezkit.data import get_sampler
from bezkit.methods import (
    BDenseConfig,
    BezierDistillConfig,
    DistillConfig,
    FlowConfig,
    RecipeResult,
    ReflowConfig,
    bdense_distill,
    bdense_train,
    bezier_distill,
    distill,
    make_trajectory_pool,
    new_mlp,
    reflow_round,
    train_flow,
)
from bezkit.paths import BezierPath
from bezkit.training import FlowMatchingLoss, TrainConfig, train
from bezkit.training.checkpoint import load_checkpoint

SRC, TGT = get_sampler("8gaussians"), get_sampler("moons")
RUNTIME_OPTIONS = ("progress", "coupling", "resume_from", "checkpoint_metadata", "validation")


def cfg(steps: int = 6, *, ema_decay: float | None = None, **kwargs: Any) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=32, lr=1e-2, seed=4, ema_decay=ema_decay,
                       progress=False, device="cpu", **kwargs)  # fmt: skip


def state(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    return train_flow(new_mlp(hidden=16, depth=1, seed=0), IndependentCoupling(SRC, TGT),
                      cfg(10)).model.eval()  # fmt: skip


def _recipes(teacher: nn.Module) -> dict[str, Callable[[TrainConfig], RecipeResult]]:
    """Every recipe, on tiny data, as ``run(train_config)``."""
    pool = make_trajectory_pool(teacher, SRC, num_branches=2, n_pairs=64, teacher_steps=4)
    return {
        "train_flow": lambda c: train_flow(
            new_mlp(hidden=16, depth=1, seed=1), IndependentCoupling(SRC, TGT), c
        ),
        "reflow_round": lambda c: reflow_round(
            teacher, SRC, c, ReflowConfig(k=2, n_pairs=64, teacher_steps=4)
        ),
        "distill": lambda c: distill(
            teacher, ReflowCoupling(teacher, SRC, n_pairs=64, steps=4), c, DistillConfig(steps=2)
        ),
        "bezier_distill": lambda c: bezier_distill(
            [teacher], SRC, TGT, c, BezierDistillConfig(n_pairs=64, teacher_steps=4)
        ),
        "bdense_distill": lambda c: bdense_distill(
            teacher, SRC, c, BDenseConfig(num_branches=2, n_pairs=64, teacher_steps=4)
        ),
        "bdense_train": lambda c: bdense_train(teacher, pool, c, BDenseConfig(num_branches=2)),
    }


RECIPE_NAMES = ("train_flow", "reflow_round", "distill", "bezier_distill", "bdense_distill",
                "bdense_train")  # fmt: skip


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_model_is_the_ema_model_with_ema_and_the_trained_one_without(teacher, name):
    run = _recipes(teacher)[name]
    plain = run(cfg())
    assert type(plain) is RecipeResult
    assert plain.ema_model is None and plain.model is plain.raw_model
    assert len(plain.losses) == plain.steps == 6 and plain.wall_seconds > 0
    with_ema = run(cfg(ema_decay=0.5))
    assert type(with_ema) is RecipeResult and with_ema.ema_model is not None
    assert torch.equal(state(with_ema.model), state(with_ema.ema_model))
    assert not torch.equal(state(with_ema.model), state(with_ema.raw_model))
    # EMA does not change the training: the trained weights are the run without EMA's
    assert torch.equal(state(with_ema.raw_model), state(plain.raw_model))
    assert with_ema.losses == plain.losses


def test_train_flow_trains_what_the_trainer_trains():
    coupling = IndependentCoupling(SRC, TGT)
    flow = FlowConfig(path=BezierPath(1), target="endpoint")
    res = train_flow(new_mlp(hidden=16, depth=1, seed=1), coupling, cfg(), flow)
    ref = train(new_mlp(hidden=16, depth=1, seed=1), FlowMatchingLoss(BezierPath(1),
                target="endpoint"), coupling.sample, cfg())  # fmt: skip
    assert torch.equal(state(res.raw_model), state(ref.raw_model)) and res.losses == ref.losses


def test_the_result_names_its_pairs_and_round(teacher):
    recipes = _recipes(teacher)
    assert recipes["train_flow"](cfg(2)).pairs is None  # fresh independent pairs every batch
    rnd = recipes["reflow_round"](cfg(2))
    assert rnd.k == 2 and rnd.pairs is not None and len(rnd.pairs) == 64
    dense = recipes["bdense_distill"](cfg(2))
    assert dense.k is None and dense.pairs is not None and len(dense.pairs.guides) == 1
    bez = recipes["bezier_distill"](cfg(2))
    assert bez.pairs is not None and len(bez.pairs.guides) == 1  # the quadratic's guide
    pool = PairPool(rnd.pairs)
    assert distill(teacher, pool, cfg(2)).pairs is rnd.pairs


EXPECTED_ORDER = {
    train_flow: ("model", "coupling", "train", "flow"),
    reflow_round: ("teacher", "source", "train", "reflow"),
    distill: ("teacher", "pairs", "train", "distillation"),
    bezier_distill: ("teachers", "source", "target", "train", "bezier"),
    bdense_distill: ("teacher", "source", "train", "bdense"),
    bdense_train: ("teacher", "pairs", "train", "bdense"),
}


@pytest.mark.parametrize("recipe", list(EXPECTED_ORDER), ids=lambda f: f.__name__)
def test_one_argument_order_and_keyword_only_runtime_options(recipe):
    params = inspect.signature(recipe).parameters
    positional = tuple(
        n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
    assert positional == EXPECTED_ORDER[recipe]
    keyword_only = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {"progress", "resume_from", "checkpoint_metadata"} <= keyword_only
    assert keyword_only <= set(RUNTIME_OPTIONS)
    assert params["train"].annotation in ("TrainConfig", TrainConfig)


@pytest.mark.parametrize("name", ["train_flow", "distill", "bdense_distill"])
def test_progress_false_silences_the_training_bar(teacher, name, capsys):
    """Issue 17: the README promises a keyword-only ``progress`` on every recipe; these three
    raised TypeError."""
    import dataclasses

    loud = dataclasses.replace(cfg(2), progress=True)
    calls = {
        "train_flow": lambda p: train_flow(
            new_mlp(2, hidden=8, depth=1), IndependentCoupling(SRC, TGT), loud, progress=p
        ),
        "distill": lambda p: distill(
            teacher,
            ReflowCoupling(teacher, SRC, n_pairs=32, steps=2).generate(),
            loud,
            progress=p,
        ),
        "bdense_distill": lambda p: bdense_distill(
            teacher,
            SRC,
            loud,
            BDenseConfig(num_branches=2, n_pairs=32, teacher_steps=2),
            progress=p,
        ),
    }
    calls[name](False)
    assert capsys.readouterr().err == ""


def test_runtime_options_cannot_be_passed_by_position(teacher):
    pool = make_trajectory_pool(teacher, SRC, num_branches=1, n_pairs=32, teacher_steps=2)
    with pytest.raises(TypeError):
        distill(teacher, pool, cfg(1), DistillConfig(), None)  # type: ignore[misc]


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_a_wrong_train_or_method_config_is_named(teacher, name):
    recipes = _recipes(teacher)
    with pytest.raises(TypeError, match=f"{name}: train must be a TrainConfig, got int"):
        recipes[name](3)  # type: ignore[arg-type]
    params = list(inspect.signature(globals()[name]).parameters)
    config_arg = params[params.index("train") + 1]  # the method's config follows train
    bad = dict(_bad_config_calls(teacher))[name]
    with pytest.raises(TypeError, match=f"{name}: {config_arg} must be a \\w+Config, got dict"):
        bad()


def _bad_config_calls(teacher: nn.Module) -> list[tuple[str, Callable[[], Any]]]:
    """Every recipe called with a dict where its method config goes."""
    pool = make_trajectory_pool(teacher, SRC, num_branches=2, n_pairs=16, teacher_steps=2)
    pairs = ReflowCoupling(teacher, SRC, n_pairs=16, steps=2)
    return [
        ("train_flow", lambda: train_flow(new_mlp(hidden=8, depth=1), pairs, cfg(1), {})),
        ("reflow_round", lambda: reflow_round(teacher, SRC, cfg(1), {"k": 2})),
        ("distill", lambda: distill(teacher, pairs, cfg(1), {"steps": 2})),
        ("bezier_distill", lambda: bezier_distill([teacher], SRC, TGT, cfg(1), {})),
        ("bdense_distill", lambda: bdense_distill(teacher, SRC, cfg(1), {})),
        ("bdense_train", lambda: bdense_train(teacher, pool, cfg(1), {})),
    ]  # type: ignore[arg-type]


def test_train_flow_names_the_new_order_when_given_the_old_one():
    with pytest.raises(TypeError, match="model comes first"):
        train_flow(IndependentCoupling(SRC, TGT), new_mlp(), cfg(1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ReflowConfig(k=1), "k"),
        (lambda: ReflowConfig(k=2, n_pairs=0), "n_pairs"),
        (lambda: ReflowConfig(k=2, teacher_steps=0), "teacher_steps"),
        (lambda: ReflowConfig(k=2, init="warm"), "init"),  # type: ignore[arg-type]
        (lambda: ReflowConfig(k=2, pair_seed=1.5), "pair_seed"),  # type: ignore[arg-type]
        (lambda: DistillConfig(steps=0), "steps"),
        (lambda: DistillConfig(init="copy"), "init"),  # type: ignore[arg-type]
        (lambda: BDenseConfig(num_branches=0), "num_branches"),
        (lambda: BDenseConfig(num_branches=2, weights=(1.0,)), "weights"),
        (lambda: BDenseConfig(weights=(1.0, -1.0, 0.0, 0.0)), "weights"),
        (lambda: BDenseConfig(n_pairs=0), "n_pairs"),
        (lambda: BDenseConfig(teacher_steps=-1), "teacher_steps"),
        (lambda: FlowConfig(target="middle"), "target"),  # type: ignore[arg-type]
        (lambda: FlowConfig(target="tangent", grid_steps=2), "grid_steps"),
        (lambda: BezierDistillConfig(n_pairs=0).validate(), "n_pairs"),
        (lambda: BezierDistillConfig(init="copy").validate(), "init"),  # type: ignore[arg-type]
        (lambda: BezierDistillConfig(endpoint="nowhere").validate(), "endpoint"),  # type: ignore[arg-type]
    ],
)
def test_bad_config_values_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_configs_are_frozen_and_keep_todays_defaults():
    reflow = ReflowConfig(k=2)
    assert (reflow.n_pairs, reflow.teacher_steps, reflow.teacher_solver, reflow.init,
            reflow.pair_seed) == (10_000, 100, "euler", "teacher", 0)  # fmt: skip
    assert (DistillConfig().steps, DistillConfig().init) == (1, "teacher")
    dense = BDenseConfig()
    assert (dense.num_branches, dense.weights, dense.restarts, dense.n_pairs, dense.teacher_steps,
            dense.teacher_solver, dense.pair_seed) == (4, None, False, 10_000, 100, "euler", 0)  # fmt: skip
    assert BDenseConfig(num_branches=2, weights=[1, 3]).weights == (1.0, 3.0)
    with pytest.raises(AttributeError):
        reflow.k = 3  # type: ignore[misc]


def test_checkpoint_metadata_is_in_every_checkpoint_of_a_recipe(teacher, tmp_path: Path):
    seen: list[dict[str, Any]] = []
    coupling = ReflowCoupling(teacher, SRC, n_pairs=64, steps=4)
    path = str(tmp_path / "run")

    class Watch(ReflowCoupling):
        def sample(self, n: int, generator: torch.Generator | None = None):  # type: ignore[override]
            if Path(path + ".safetensors").exists():
                seen.append(load_checkpoint(path).metadata)
            return coupling.sample(n, generator)

    watch = Watch(teacher, SRC, n_pairs=64, steps=4)
    config = cfg(4, checkpoint_path=path, checkpoint_every=2)
    distill(teacher, watch, config, checkpoint_metadata={"run": "students", "k": 2})
    final = load_checkpoint(path).metadata
    assert seen and seen[0]["step"] == 2  # the periodic checkpoint, read during training
    for meta in (seen[0], final):
        assert meta["run"] == "students" and meta["k"] == 2
    assert final["step"] == 4
