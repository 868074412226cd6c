"""Couplings made by a teacher flow (METHODS.md section 3).

- ``ReflowCoupling`` (teacher forward): ``X0 ~ pi0``, ``X1 = ODE_teacher(X0)`` from t = 0 to 1.
  The endpoint is *generated*: solver and fitting error enter the next round's data (k-RF).
- ``DataAnchoredCoupling`` (teacher reverse): ``X1`` real data, ``X0 = ODE_teacher^-1(X1)`` from
  t = 1 back to 0. The endpoint stays real; the error moves to the noise side.

Both generate their pairs once (on first use, or with ``generate()``) and then sample from the cache.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.data.toy2d import Sampler, check_points
from bezkit.solvers.fixed_step import Velocity
from bezkit.solvers.ode import solve_ode

__all__ = ["DataAnchoredCoupling", "ReflowCoupling", "integrate_in_batches"]


def integrate_in_batches(
    teacher: Velocity,
    x: Tensor,
    *,
    reverse: bool = False,
    steps: int = 100,
    method: str = "euler",
    batch_size: int = 4096,
    progress: bool = False,
    desc: str = "teacher ODE",
) -> Tensor:
    """Run the teacher's ODE on ``x`` batch by batch (forward 0 -> 1, or reverse 1 -> 0)."""
    outs = []
    starts = range(0, x.shape[0], batch_size)
    for i in tqdm(starts, desc=desc, disable=not progress, leave=False):
        xb = x[i : i + batch_size]
        t0, t1 = (1.0, 0.0) if reverse else (0.0, 1.0)
        outs.append(solve_ode(teacher, xb, method=method, steps=steps, t_start=t0, t_end=t1).x)
    return torch.cat(outs)


class _TeacherPairs:
    """Pairs made by running the teacher's ODE from one side, generated exactly once.

    ``reverse=False``: start at ``X0`` (given points or ``n_pairs`` seeded draws of ``sampler``) and
    integrate 0 -> 1. ``reverse=True``: start at ``X1`` and integrate 1 -> 0.
    """

    def __init__(
        self,
        teacher: Velocity,
        sampler: Sampler | None,
        points: Tensor | None,
        *,
        reverse: bool,
        n_pairs: int,
        steps: int,
        method: str,
        seed: int,
        batch_size: int,
        progress: bool,
    ) -> None:
        side = "x1" if reverse else "x0"
        if (sampler is None) == (points is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of a sampler or {side}")
        self.teacher, self.sampler, self.reverse = teacher, sampler, reverse
        self.points = None if points is None else check_points(points, name=side)
        self.n_pairs, self.steps, self.method, self.seed = n_pairs, steps, method, seed
        self.batch_size, self.progress = batch_size, progress
        self._pool: PairPool | None = None
        self.generation_count = 0  # how many times pairs were generated (tests: once per round)

    def _make_pairs(self) -> Pairs:
        start = self.points
        if start is None:
            if self.sampler is None:  # the constructor demands exactly one of the two
                raise RuntimeError(f"{type(self).__name__} has neither a sampler nor points")
            start = self.sampler.sample(self.n_pairs, torch.Generator().manual_seed(self.seed))
        end = integrate_in_batches(
            self.teacher,
            start,
            reverse=self.reverse,
            steps=self.steps,
            method=self.method,
            batch_size=self.batch_size,
            progress=self.progress,
            desc="data-anchored pairs" if self.reverse else "reflow pairs",
        )
        return Pairs(end, start) if self.reverse else Pairs(start, end)

    def generate(self) -> PairPool:
        if self._pool is None:
            module = self.teacher if isinstance(self.teacher, nn.Module) else None
            was_training = module is not None and module.training
            if module is not None:
                module.eval()
            self._pool = PairPool(self._make_pairs())
            if module is not None and was_training:
                module.train()
            self.generation_count += 1
        return self._pool

    @property
    def pairs(self) -> Pairs:
        return self.generate().pairs

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        return self.generate().sample(n, generator)


class ReflowCoupling(_TeacherPairs):
    """``(X0, ODE_teacher(X0))`` for ``n_pairs`` seeded draws of ``source`` (or the given ``x0``)."""

    def __init__(
        self,
        teacher: Velocity,
        source: Sampler | None = None,
        *,
        n_pairs: int = 10_000,
        x0: Tensor | None = None,
        steps: int = 100,
        method: str = "euler",
        seed: int = 0,
        batch_size: int = 4096,
        progress: bool = False,
    ) -> None:
        super().__init__(
            teacher,
            source,
            x0,
            reverse=False,
            n_pairs=n_pairs,
            steps=steps,
            method=method,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )


class DataAnchoredCoupling(_TeacherPairs):
    """``(ODE_teacher^-1(X1), X1)`` for real data ``X1`` (given, or seeded draws of ``target``)."""

    def __init__(
        self,
        teacher: Velocity,
        target: Sampler | None = None,
        *,
        n_pairs: int = 10_000,
        x1: Tensor | None = None,
        steps: int = 100,
        method: str = "euler",
        seed: int = 0,
        batch_size: int = 4096,
        progress: bool = False,
    ) -> None:
        super().__init__(
            teacher,
            target,
            x1,
            reverse=True,
            n_pairs=n_pairs,
            steps=steps,
            method=method,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )
