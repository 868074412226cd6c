"""B-DENSE: multi-branch dense trajectory distillation (bezkit's reading; METHODS.md section 4).

The student has K branches (``BranchedVelocity``). Branch ``j`` predicts the teacher's trajectory
state ``Z_{t_j}`` (``0 < t_1 < ... < t_K = 1``, default ``t_j = j / K``) from the input state at time
``s``, as a displacement ``branch_j(x, s) = x + (t_j - s) u_j(x, s)``. The loss is

    L = sum_{j : t_j > s} w_j || branch_j(Z_s, s) - Z_{t_j} ||^2,   w_j = 1 / K by default,

with ``s = 0`` (one-step dense supervision) or, with ``restarts=True``, ``s`` drawn from
``{0, t_1, ..., t_{K-1}}`` so that few-step sampling can restart from branch outputs (weights are
renormalised over the active branches). K = 1 is plain one-step distillation (tested).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import Coupling, PairPool, Pairs
from bezkit.data.toy2d import Sampler
from bezkit.methods.flow import check_recipe_args, with_progress
from bezkit.methods.result import RecipeResult, fixed_pairs
from bezkit.models.branched import BranchedVelocity, branch_times
from bezkit.models.mlp import MLPVelocity
from bezkit.models.unet import UNetVelocity
from bezkit.solvers.ode import solve_ode
from bezkit.training import trainer
from bezkit.training.config import TrainConfig
from bezkit.training.objectives import SeedBlockedLoss, blocked_draws

__all__ = [
    "BDenseConfig",
    "BDenseLoss",
    "bdense_distill",
    "bdense_train",
    "branched_from_teacher",
    "make_trajectory_pool",
]


def make_trajectory_pool(
    teacher: nn.Module,
    source: Sampler,
    *,
    num_branches: int,
    n_pairs: int = 10_000,
    teacher_steps: int = 100,
    teacher_solver: str = "euler",
    seed: int = 0,
    batch_size: int = 4096,
) -> PairPool:
    """Teacher trajectories from ``X0 ~ source`` kept at ``0, t_1, ..., t_K``: ``x0 = Z_0``,
    ``guides = (Z_{t_1}, ..., Z_{t_{K-1}})``, ``x1 = Z_1`` (the teacher's forward endpoint; the
    ``(x0, x1)`` pairs are the same as ``ReflowCoupling``'s with the same seed and steps when the
    steps are a multiple of K). The solver grid is rounded up to a multiple of K so that each
    ``t_j = j / K`` is a grid point."""
    k = num_branches
    branch_times(k)
    steps = k * math.ceil(teacher_steps / k)
    teacher.eval()
    x0 = source.sample(n_pairs, torch.Generator().manual_seed(seed))
    keep = [steps * j // k for j in range(k + 1)]
    states: list[list[Tensor]] = [[] for _ in keep]
    for i in range(0, n_pairs, batch_size):
        sol = solve_ode(
            teacher, x0[i : i + batch_size], method=teacher_solver, steps=steps, record=True
        )
        trajectory = sol.recorded_trajectory()
        for slot, idx in enumerate(keep):
            states[slot].append(trajectory[idx])
    z = [torch.cat(s) for s in states]
    return PairPool(Pairs(z[0], z[-1], tuple(z[1:-1])))


class BDenseLoss(SeedBlockedLoss):
    """``sum_j w_j ||branch_j(Z_s, s) - Z_{t_j}||^2`` over the active branches (mean over data)."""

    def __init__(
        self, num_branches: int, *, weights: Sequence[float] | None = None, restarts: bool = False
    ) -> None:
        self.times = branch_times(num_branches)
        w = [1.0 / num_branches] * num_branches if weights is None else [float(v) for v in weights]
        if len(w) != num_branches or any(v < 0 for v in w) or sum(w) <= 0:
            raise ValueError(f"need {num_branches} non-negative branch weights, got {w}")
        self.weights = torch.tensor(w)
        self.restarts = restarts

    def single_loss(self, model: nn.Module, pairs: Pairs, generator: torch.Generator) -> Tensor:
        """The loss on ``pairs``, restart states drawn from ``generator``."""
        return self._per_sample(model, pairs, [generator]).mean()

    def block_losses(
        self, model: nn.Module, pairs: Pairs, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """Per-seed losses ``(S,)`` of a seed-blocked batch: block ``s`` draws its restart states
        from ``generators[s]`` exactly as a solo call with that generator would."""
        gens = list(generators)
        return self._per_sample(model, pairs, gens).reshape(len(gens), -1).mean(dim=1)

    def _per_sample(
        self, model: nn.Module, pairs: Pairs, generators: list[torch.Generator]
    ) -> Tensor:
        """``sum_j w_j ||branch_j(Z_s, s) - Z_{t_j}||^2`` for each pair, shape ``(n,)``."""
        k = len(self.times)
        states = [pairs.x0, *pairs.guides, pairs.x1]  # Z at 0, t_1, ..., t_K
        if len(states) != k + 1:
            raise ValueError(
                f"B-DENSE with K={k} needs {k - 1} intermediate states, got {len(pairs.guides)}"
            )
        n = len(pairs)
        if self.restarts:
            start = blocked_draws(
                n, generators, lambda m, g: torch.randint(0, k, (m,), generator=g)
            ).to(pairs.x0.device)
        else:
            start = torch.zeros(n, dtype=torch.long, device=pairs.x0.device)
        stacked = torch.stack(states, dim=1)  # (n, K+1, *d)
        x_in = stacked[torch.arange(n, device=stacked.device), start]
        grid = torch.tensor((0.0, *self.times), dtype=x_in.dtype, device=x_in.device)
        branches = model(x_in, grid[start], branches=True)  # (n, K, *d), through forward
        sq = (branches - stacked[:, 1:]).pow(2).reshape(n, k, -1).mean(-1)  # (n, K)
        active = (torch.arange(k, device=sq.device)[None, :] >= start[:, None]).to(sq.dtype)
        w = self.weights.to(sq)[None, :] * active
        if self.restarts:
            w = w / w.sum(dim=1, keepdim=True) * self.weights.sum()
        return (w * sq).sum(dim=1)


def _replicate_output(state: dict[str, Tensor], prefix: str, num_branches: int) -> None:
    """Repeat the output layer's weight and bias ``num_branches`` times along the output axis."""
    for name in ("weight", "bias"):
        key = f"{prefix}.{name}"
        state[key] = state[key].repeat(num_branches, *([1] * (state[key].ndim - 1)))


def branched_from_teacher(teacher: nn.Module, num_branches: int) -> BranchedVelocity:
    """A K-branch student whose every branch starts as the teacher (output layer replicated).

    Works for an ``MLPVelocity`` (its last linear layer) and a ``UNetVelocity`` (its output
    convolution ``conv_out``, giving ``K * out_channels`` channels, one group per branch)."""
    state = copy.deepcopy(teacher.state_dict())
    if isinstance(teacher, MLPVelocity):
        net: nn.Module = MLPVelocity(
            teacher.dim,
            hidden=teacher.hidden,
            depth=teacher.depth,
            time_dim=teacher.time_dim,
            out_dim=num_branches * teacher.out_dim,
            activation=teacher.activation,
            time_input=teacher.time_input,
        )
        last = max(int(key.split(".")[1]) for key in state if key.startswith("net."))
        _replicate_output(state, f"net.{last}", num_branches)
    elif isinstance(teacher, UNetVelocity):
        unet_cfg = teacher.config()
        unet_cfg["out_channels"] = num_branches * unet_cfg["out_channels"]
        net = UNetVelocity(**unet_cfg)
        _replicate_output(state, "conv_out", num_branches)
    else:
        raise TypeError(
            "branched_from_teacher needs an MLPVelocity or UNetVelocity teacher, got "
            f"{type(teacher).__name__}"
        )
    net.load_state_dict(state)
    return BranchedVelocity(net, num_branches)


@dataclass(frozen=True)
class BDenseConfig:
    """B-DENSE's options: ``num_branches`` (K), the branch ``weights`` ``w_j`` (None: ``1 / K``
    each), ``restarts`` (draw ``s`` from ``{0, t_1, ..., t_{K-1}}`` rather than ``s = 0``), and the
    trajectory pool of ``bdense_distill``: ``n_pairs`` teacher trajectories (``teacher_steps``
    steps of ``teacher_solver``, sources seeded by ``pair_seed``)."""

    num_branches: int = 4
    weights: Sequence[float] | None = None
    restarts: bool = False
    n_pairs: int = 10_000
    teacher_steps: int = 100
    teacher_solver: str = "euler"
    pair_seed: int = 0

    def __post_init__(self) -> None:
        if self.weights is not None:  # any sequence is accepted; kept as a tuple (frozen)
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        self.validate()

    def validate(self) -> None:
        """Raise a clear error, naming the field, for a bad value."""
        for name in ("num_branches", "n_pairs", "teacher_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.pair_seed, bool) or not isinstance(self.pair_seed, int):
            raise ValueError(f"pair_seed must be an int, got {self.pair_seed!r}")
        if not isinstance(self.restarts, bool):
            raise ValueError(f"restarts must be True or False, got {self.restarts!r}")
        if self.weights is not None and (
            len(self.weights) != self.num_branches
            or any(w < 0 for w in self.weights)
            or sum(self.weights) <= 0
        ):
            raise ValueError(
                f"weights must be {self.num_branches} non-negative branch weights (one per "
                f"branch, not all zero), got {list(self.weights)}"
            )

    def loss(self) -> BDenseLoss:
        """The ``BDenseLoss`` of these options."""
        return BDenseLoss(self.num_branches, weights=self.weights, restarts=self.restarts)


def bdense_distill(
    teacher: nn.Module,
    source: Sampler,
    train: TrainConfig,
    bdense: BDenseConfig | None = None,
    *,
    progress: bool | None = None,
    resume_from: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
) -> RecipeResult:
    """Distil the teacher's whole trajectory into a K-branch student initialised from it
    (the pool of ``make_trajectory_pool``, then ``bdense_train``); the result's ``pairs`` are the
    trajectory pool (``x0 = Z_0``, ``guides = (Z_{t_1}, ..., Z_{t_{K-1}})``, ``x1 = Z_1``).
    ``progress`` shows the training's progress bar (``None``: as ``train.progress`` says)."""
    check_recipe_args("bdense_distill", train, bdense, BDenseConfig, "bdense")
    bdense = bdense if bdense is not None else BDenseConfig()
    bdense.validate()
    pool = make_trajectory_pool(
        teacher,
        source,
        num_branches=bdense.num_branches,
        n_pairs=bdense.n_pairs,
        teacher_steps=bdense.teacher_steps,
        teacher_solver=bdense.teacher_solver,
        seed=bdense.pair_seed,
    )
    return bdense_train(
        teacher, pool, train, bdense, progress=progress, resume_from=resume_from,
        checkpoint_metadata=checkpoint_metadata,
    )  # fmt: skip


def bdense_train(
    teacher: nn.Module,
    pairs: Coupling,
    train: TrainConfig,
    bdense: BDenseConfig | None = None,
    *,
    progress: bool | None = None,
    resume_from: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
) -> RecipeResult:
    """Train a K-branch student (``branched_from_teacher``) with ``BDenseLoss`` on trajectory
    pairs ``pairs`` (``x0 = Z_0``, ``guides = (Z_{t_1}, ..., Z_{t_{K-1}})``, ``x1 = Z_1``), e.g. a
    ``make_trajectory_pool`` or a folder of teacher segments; only ``num_branches``, ``weights``
    and ``restarts`` of ``bdense`` are used here. ``progress`` shows the training's progress bar
    (``None``: as ``train.progress`` says). ``resume_from`` continues an interrupted run
    from its training state; ``checkpoint_metadata`` goes into every checkpoint of the run."""
    check_recipe_args("bdense_train", train, bdense, BDenseConfig, "bdense")
    bdense = bdense if bdense is not None else BDenseConfig()
    bdense.validate()
    student = branched_from_teacher(teacher, bdense.num_branches)
    result = trainer.train(
        student,
        bdense.loss(),
        pairs.sample,
        with_progress(train, progress),
        resume_from=resume_from,
        checkpoint_metadata=checkpoint_metadata,
    )
    return RecipeResult.from_training(result, pairs=fixed_pairs(pairs))
