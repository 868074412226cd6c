"""The 2D benchmark of torchcfm (Tong et al., "Improving and generalizing flow-based generative
models with minibatch optimal transport", TMLR 2024, Table 2), run with bezkit's parts.

I-CFM and OT-CFM on four tasks, each over the published seeds 42..46 (torchcfm's
``runner/scripts/two-dim-cfm.sh``):

    task                 source (t = 0)             target (t = 1)
    N->8gaussians        N(0, I), fresh per batch   torchcfm-8gaussians
    moons->8gaussians    torchcfm-twodim-moons      torchcfm-twodim-8gaussians
    N->moons             N(0, I), fresh per batch   torchcfm-moons
    N->scurve            N(0, I), fresh per batch   torchcfm-scurve

Per (task, method, seed): 10000 / 1000 / 1000 train / validation / test points of each dataset
(12000 drawn with the seed, split in order); the torchcfm network (``MODEL_SHAPES["torchcfm"]``,
seeded); AdamW, lr 1e-3 constant, weight decay 1e-5, no clipping, no EMA, batch 512; the Gaussian
path of width ``sigma = 0.1``; every ``val_every`` steps the loss on the validation pairs (fixed
draws), the weights of the lowest one kept. Scored on the test set: 1000 points generated with 100
Euler steps from 1000 source points (fresh N(0, I) drawn with the seed, or the source's test
points), ``W2`` (exact, POT) to the 1000 target test points, and ``NPE = |PE - W2^2(x0, x1)| /
W2^2(x0, x1)`` with ``PE`` the path energy of those trajectories (METHODS.md section 10 names every
difference from the published protocol).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bezkit.couplings import IndependentCoupling, MinibatchOTCoupling
from bezkit.couplings.ot_plan import exact_ot_permutation
from bezkit.couplings.pairs import Coupling, Pairs
from bezkit.data import ArraySampler, Sampler, get_sampler
from bezkit.experiments.evaluate import evaluate_flow
from bezkit.methods import FlowConfig, new_mlp, train_flow
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.models.mlp import MODEL_SHAPES
from bezkit.training import FlowMatchingLoss, TrainConfig

__all__ = [
    "METHODS",
    "PUBLISHED_SEEDS",
    "PUBLISHED_STEPS",
    "TASKS",
    "BenchmarkSettings",
    "RunResult",
    "Task",
    "TaskData",
    "run_one",
    "settings_dict",
    "summarise",
    "table_markdown",
    "task_data",
]

PUBLISHED_SEEDS: tuple[int, ...] = (42, 43, 44, 45, 46)
# 1000 epochs of ceil(10000 / 512) = 20 batches (runner/configs/experiment/cfm.yaml)
PUBLISHED_STEPS = 20_000
METHODS: tuple[str, ...] = ("I-CFM", "OT-CFM")


@dataclass(frozen=True)
class Task:
    """One row of the table: where the flow starts (``source``; ``"gaussian"`` is drawn fresh for
    every batch, like torchcfm's ``randn_like``) and the dataset it carries it to."""

    name: str
    source: str
    target: str


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("N->8gaussians", "gaussian", "torchcfm-8gaussians"),
        Task("moons->8gaussians", "torchcfm-twodim-moons", "torchcfm-twodim-8gaussians"),
        Task("N->moons", "gaussian", "torchcfm-moons"),
        Task("N->scurve", "gaussian", "torchcfm-scurve"),
    )
}


@dataclass(frozen=True)
class BenchmarkSettings:
    """Everything that defines a run of the protocol (the published values by default)."""

    steps: int = PUBLISHED_STEPS
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-5
    sigma: float = 0.1
    val_every: int = 200
    n_train: int = 10_000
    n_val: int = 1000
    n_test: int = 1000
    euler_steps: int = 100
    model_shape: str = "torchcfm"

    def validate(self) -> None:
        """A ``ValueError`` naming the field for a value out of range."""
        for name in ("steps", "batch_size", "val_every", "n_train", "n_val", "n_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.euler_steps < 1:
            raise ValueError(f"euler_steps must be >= 1, got {self.euler_steps}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.sigma >= 0):
            raise ValueError("lr must be > 0, weight_decay and sigma >= 0")
        if self.model_shape not in MODEL_SHAPES:
            raise ValueError(f"unknown model_shape {self.model_shape!r}")


@dataclass(frozen=True)
class TaskData:
    """One seed's data of a task: train / validation / test splits of the target and, unless the
    source is ``gaussian`` (then ``None``: drawn fresh), of the source; the test sources."""

    train_source: Sampler
    train_target: ArraySampler
    val: Pairs
    test_x0: Tensor
    test_x1: Tensor


def _split(points: Tensor, s: BenchmarkSettings) -> tuple[Tensor, Tensor, Tensor]:
    a, b = s.n_train, s.n_train + s.n_val
    return points[:a], points[a:b], points[b : b + s.n_test]


def task_data(task: Task, seed: int, settings: BenchmarkSettings) -> TaskData:
    """The data of ``task`` for ``seed``: ``n_train + n_val + n_test`` points of each dataset drawn
    with the seed, split in that order (validation pairs: the validation points with fixed
    source draws, or the source's validation points)."""
    total = settings.n_train + settings.n_val + settings.n_test
    g = torch.Generator().manual_seed(seed)
    target = get_sampler(task.target).sample(total, g)
    t_train, t_val, t_test = _split(target, settings)
    if task.source == "gaussian":
        source: Sampler = get_sampler("gaussian")
        val_x0 = torch.randn(settings.n_val, 2, generator=g)
        test_x0 = torch.randn(settings.n_test, 2, generator=g)
    else:
        s_train, val_x0, test_x0 = _split(get_sampler(task.source).sample(total, g), settings)
        source = ArraySampler(s_train, name=f"{task.source} (train)")
    return TaskData(
        train_source=source,
        train_target=ArraySampler(t_train, name=f"{task.target} (train)"),
        val=Pairs(val_x0, t_val),
        test_x0=test_x0,
        test_x1=t_test,
    )


def _coupling(method: str, data: TaskData) -> Coupling:
    if method == "I-CFM":
        return IndependentCoupling(data.train_source, data.train_target)
    if method == "OT-CFM":
        return MinibatchOTCoupling(data.train_source, data.train_target, method="exact")
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def _validation(method: str, data: TaskData, loss: FlowMatchingLoss, seed: int) -> Callable:
    """The loss on the validation pairs (paired by exact OT for OT-CFM), the same draws of t and
    noise every time."""
    val = data.val
    if method == "OT-CFM":
        val = Pairs(val.x0, val.x1[exact_ot_permutation(val.x0, val.x1)])

    def validation(model: nn.Module) -> float:
        return float(loss(model, val, torch.Generator().manual_seed(seed + 1_000_003)))

    return validation


@dataclass(frozen=True)
class RunResult:
    """One (task, method, seed): the test scores of the best-validation weights, and the
    ``noise_floor``: W2 between the test targets and a fresh target sample of the same size (what
    a perfect sampler scores; NPE's ``W2^2`` is uncertain by about that much, METHODS.md)."""

    task: str
    method: str
    seed: int
    w2: float
    npe: float
    path_energy: float
    w2_squared: float
    best_step: int | None
    train_seconds: float
    noise_floor: float = 0.0
    val_losses: list[list[float]] = field(default_factory=list)


def run_one(task: str, method: str, seed: int, settings: BenchmarkSettings) -> RunResult:
    """Train ``method`` on ``task`` with ``seed`` and score its best-validation weights."""
    settings.validate()
    data = task_data(TASKS[task], seed, settings)
    shape = MODEL_SHAPES[settings.model_shape]
    model = new_mlp(
        2,
        hidden=int(shape.get("hidden", 256)),  # type: ignore[call-overload]  # ints in the table
        depth=int(shape.get("depth", 3)),  # type: ignore[call-overload]
        seed=seed,
        activation=str(shape["activation"]),
        time_input=str(shape["time_input"]),
    )
    config = TrainConfig(
        steps=settings.steps,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        schedule="constant",
        grad_clip=None,
        ema_decay=None,
        seed=seed,
        device="cpu",
        progress=False,
        val_every=settings.val_every,
    )
    flow = FlowConfig(sigma=settings.sigma)
    loss = FlowMatchingLoss(sigma=settings.sigma)
    result = train_flow(
        model,
        _coupling(method, data),
        config,
        flow,
        validation=_validation(method, data, loss, seed),
    )
    best = result.best_model if result.best_model is not None else result.model
    ev = evaluate_flow(
        best,
        data.test_x0,
        data.test_x1,
        steps=[settings.euler_steps],
        paths=True,
        crossings=2,
        npe=True,
    )
    floor = wasserstein2(
        data.test_x1,
        get_sampler(TASKS[task].target).sample(
            settings.n_test, torch.Generator().manual_seed(seed + 2_000_003)
        ),
    )
    assert ev.paths is not None  # paths=True
    assert ev.paths.normalised_path_energy is not None and ev.paths.w2_squared is not None
    return RunResult(
        task=task,
        method=method,
        seed=seed,
        w2=ev.w2(settings.euler_steps),
        npe=ev.paths.normalised_path_energy,
        path_energy=ev.paths.path_energy,
        w2_squared=ev.paths.w2_squared,
        best_step=result.best_step,
        train_seconds=result.wall_seconds,
        noise_floor=floor,
        val_losses=result.val_losses,
    )


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": float(len(values)),
    }


def summarise(results: Sequence[RunResult]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{task: {method: {"w2": {mean, std, n}, "npe": {...}, "noise_floor": {...}}}}`` over the
    seeds."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for task in TASKS:
        for method in METHODS:
            rows = [r for r in results if r.task == task and r.method == method]
            if rows:
                out.setdefault(task, {})[method] = {
                    "w2": _mean_std([r.w2 for r in rows]),
                    "npe": _mean_std([r.npe for r in rows]),
                    "noise_floor": _mean_std([r.noise_floor for r in rows]),
                }
    return out


def table_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table: one row per task, W2 and NPE (mean +- std) per method, and
    the W2 noise floor of the test set (mean over seeds)."""
    head = "| task | " + " | ".join(f"{m} W2 | {m} NPE" for m in METHODS) + " | W2 floor |"
    lines = [head, "| --- |" + " --- | --- |" * len(METHODS) + " --- |"]
    for task, by_method in summary.items():
        floors = [v["noise_floor"]["mean"] for v in by_method.values()]
        cells = []
        for m in METHODS:
            if m not in by_method:
                cells += ["-", "-"]
                continue
            w2, npe = by_method[m]["w2"], by_method[m]["npe"]
            cells += [
                f"{w2['mean']:.3f} +- {w2['std']:.3f}",
                f"{npe['mean']:.3f} +- {npe['std']:.3f}",
            ]
        cells.append(f"{statistics.fmean(floors):.3f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def settings_dict(settings: BenchmarkSettings) -> dict[str, Any]:
    """The settings as JSON, with the published step count and seeds beside them."""
    return {
        **asdict(settings),
        "published_steps": PUBLISHED_STEPS,
        "published_seeds": list(PUBLISHED_SEEDS),
    }
