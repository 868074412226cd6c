"""The pair pools a round's students and chains train on, generated once and timed.

Every pool of round ``k`` and seed ``s`` has ``n_pairs`` pairs and its own seed. A pool made from
one teacher is shared by every method that uses it (same pairs: paired comparison), and its
generation time is counted in full in the budget of *every* method that trains on it, so budgets
are comparable across methods. ``teacher_nfe`` is the number of teacher evaluations per pair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.couplings.reflow import ReflowCoupling
from bezkit.data.toy2d import Sampler
from bezkit.methods.bdense import make_trajectory_pool
from bezkit.methods.bezier_distillation import (
    BezierDistillConfig,
    GuideState,
    bezier_guides,
    make_bezier_pairs,
)
from bezkit.paths.guides import GuidePlacement

__all__ = ["Pool", "PoolMaker"]


@dataclass
class Pool:
    """Generated pairs with what they cost: seconds and teacher evaluations per pair."""

    pool: PairPool
    seconds: float
    teacher_nfe: int
    kind: str

    @property
    def pairs(self) -> Pairs:
        """The pool's pairs ``(X0, X1)`` and their guides."""
        return self.pool.pairs

    def linear(self) -> PairPool:
        """The same ``(X0, X1)`` without guides (for the linear students on these pairs)."""
        return PairPool(Pairs(self.pairs.x0, self.pairs.x1))


class PoolMaker:
    """Makes (and caches, per teacher) the pools of one seed and round."""

    def __init__(
        self,
        source: Sampler,
        target: Sampler,
        *,
        n_pairs: int,
        teacher_steps: int,
        num_branches: int,
        pair_seed: int,
    ) -> None:
        self.source, self.target = source, target
        self.n_pairs, self.teacher_steps = n_pairs, teacher_steps
        self.num_branches, self.pair_seed = num_branches, pair_seed
        self._cache: dict[tuple[int, ...] | tuple, Pool] = {}

    def _get(self, key: tuple, make: Callable[[], PairPool], nfe: int, kind: str) -> Pool:
        if key not in self._cache:
            t0 = time.perf_counter()
            pool = make()
            self._cache[key] = Pool(pool, time.perf_counter() - t0, nfe, kind)
        return self._cache[key]

    def reflow(self, teacher: nn.Module) -> Pool:
        """``(X0, ODE_teacher(X0))``: fresh source, generated X1."""

        def make() -> PairPool:
            coupling = ReflowCoupling(
                teacher,
                self.source,
                n_pairs=self.n_pairs,
                steps=self.teacher_steps,
                seed=self.pair_seed,
            )
            return coupling.generate()

        return self._get(("reflow", id(teacher)), make, self.teacher_steps, "reflow")

    def anchored(
        self,
        teacher: nn.Module,
        *,
        guide: GuideState = "euler",
        placement: GuidePlacement = "control",
    ) -> Pool:
        """Data-anchored pairs ``(ODE_teacher^-1(X1), X1)`` for held-in ``X1``, with the quadratic
        guide of the teacher: its state at s = 1/2 by one Euler step (``"euler"``) or its ODE
        (``"ode"``), or (``"one-step"``) the seed's literal guide ``X0 + v(X0, 0)``, one full
        teacher step; placed as the control point or (``"interpolate"``) so the curve passes
        through it. The pairs ``(X0, X1)`` are the same for every guide."""
        cfg = self._bezier_config(order=2, guide=guide, placement=placement)

        def make() -> PairPool:
            return make_bezier_pairs([teacher], self.source, self.target, cfg)

        extra = max(1, round(self.teacher_steps / 2)) if guide == "ode" else 1
        key = ("anchored", guide, placement, id(teacher))
        return self._get(key, make, self.teacher_steps + extra, f"anchored-{guide}")

    def forward(self, teacher: nn.Module, cfg: BezierDistillConfig) -> Pool:
        """The very pairs of :meth:`reflow` (same X0, X1, seed) with the guides of ``cfg``
        (:func:`~bezkit.methods.bezier_distillation.bezier_guides`); its cost includes the reflow
        pool's."""
        base = self.reflow(teacher)
        key = ("forward", cfg.guide_state, cfg.placement, cfg.times(), id(teacher))

        def make() -> PairPool:
            p = base.pairs
            return PairPool(Pairs(p.x0, p.x1, bezier_guides([teacher], p.x0, p.x1, cfg)))

        states = [max(1, round(self.teacher_steps * s)) for s in cfg.times()]
        nfe = sum(states) if cfg.guide_state == "ode" else len(states)
        fresh = key not in self._cache
        made = self._get(key, make, self.teacher_steps + nfe, f"forward-{cfg.guide_state}")
        if fresh:
            made.seconds += base.seconds
        return made

    def cubic(self, teacher: nn.Module, second: nn.Module) -> Pool:
        """The same data-anchored pairs with two guides: the teacher's and a second teacher's."""
        cfg = self._bezier_config(order=3)

        def make() -> PairPool:
            return make_bezier_pairs([teacher, second], self.source, self.target, cfg)

        return self._get(
            ("cubic", id(teacher), id(second)), make, self.teacher_steps + 2, "anchored-cubic"
        )

    def trajectory(self, teacher: nn.Module) -> Pool:
        """The teacher's states at ``j / B`` along its trajectories (B-DENSE)."""
        b = self.num_branches

        def make() -> PairPool:
            return make_trajectory_pool(
                teacher,
                self.source,
                num_branches=b,
                n_pairs=self.n_pairs,
                teacher_steps=self.teacher_steps,
                seed=self.pair_seed,
            )

        nfe = b * math.ceil(self.teacher_steps / b)
        return self._get(("trajectory", id(teacher)), make, nfe, "trajectory")

    def _bezier_config(
        self, *, order: int, guide: GuideState = "euler", placement: GuidePlacement = "control"
    ) -> BezierDistillConfig:
        return BezierDistillConfig(
            order=order,
            guide_state=guide,
            placement=placement,
            n_pairs=self.n_pairs,
            teacher_steps=self.teacher_steps,
            pair_seed=self.pair_seed,
        )
