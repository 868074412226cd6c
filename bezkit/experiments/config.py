"""Configuration of the 2D error-accumulation experiment (``bezkit experiment``).

For every (source, target) pair and every training seed:

- **chains** of ``rounds`` = K rounds, each round's teacher the previous round's model:
  ``reflow`` (k-RF -> its forward pairs -> (k+1)-RF), ``anchored`` (the next round trained on the
  round's data-anchored pairs: real X1, reverse-ODE X0) and ``bezier`` (the next round is the
  quadratic Bezier-distilled flow of the round: real endpoint, guide from the round's model,
  tangent target, uniform t). Round 1 of every chain is the 1-RF.
- **students** of the reflow chain's k-RF for k = 1..``student_rounds`` (the methods of
  :mod:`bezkit.experiments.protocol`), each at every student budget
  (``student_steps * f`` for ``f`` in ``budget_factors``), and the OT baselines (``otcfm``,
  ``full-ot``) once.

Numbers are measured for every seed on its own evaluation draws; the report gives mean and 95%
interval over seeds, paired differences against plain k-RF distillation, and verdicts from
Holm-adjusted p-values that are yes / no only where every student budget agrees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bezkit.data.split import check_split_sizes, split_points
from bezkit.data.toy2d import ArraySampler, get_sampler
from bezkit.experiments.protocol import (
    BASELINE_METHODS,
    DEFAULT_STUDENTS,
    FULL_STUDENTS,
    QUICK_STUDENTS,
    STUDENTS,
)
from bezkit.experiments.seeds import SPLIT_OFFSET

__all__ = ["CHAIN_KINDS", "ExperimentConfig"]

#: The kinds of multi-round chain.
CHAIN_KINDS: tuple[str, ...] = ("reflow", "anchored", "bezier")

#: Options that must be >= 1.
_POSITIVE: tuple[str, ...] = (
    "hidden",
    "depth",
    "batch_size",
    "flow_steps",
    "baseline_steps",
    "round_steps",
    "student_steps",
    "n_pairs",
    "teacher_steps",
    "n_eval",
    "eval_draws",
    "many_steps",
    "n_projections",
    "bdense_branches",
)


@dataclass
class ExperimentConfig:
    """Everything that fixes a run. ``quick()`` is the one-minute version used by the tests,
    ``full()`` the whole protocol (more seeds, rounds, a harder pair, the extra readings).

    ``sigma`` > 0 trains the flows learnt from data (the 1-RF, i.e. I-CFM, and the OT-CFM /
    full-OT baselines) on the Gaussian path around the line (METHODS.md section 1); reflow rounds,
    students and Bezier paths keep sigma = 0. The default 0 is the run without noise, bit for bit."""

    pairs: list[tuple[str, str]] = field(default_factory=lambda: [("8gaussians", "moons")])
    seeds: int = 3
    seed: int = 0
    rounds: int = 4
    student_rounds: int = 1
    methods: tuple[str, ...] = DEFAULT_STUDENTS
    baselines: tuple[str, ...] = ("otcfm",)
    chains: tuple[str, ...] = CHAIN_KINDS
    hidden: int = 128
    depth: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    sigma: float = 0.0
    flow_steps: int = 2000
    baseline_steps: int = 1000
    round_steps: int = 800
    student_steps: int = 400
    budget_factors: tuple[int, ...] = (1, 4)
    n_pairs: int = 4096
    teacher_steps: int = 64
    full_ot_points: int = 2048
    bdense_branches: int = 4
    held_out_fraction: float = 0.2
    n_eval: int = 4096
    eval_draws: int = 2
    eval_steps: tuple[int, ...] = (1, 2, 4)
    many_steps: int = 64
    w2: Literal["sliced", "exact"] = "sliced"
    n_projections: int = 256
    exact_methods: tuple[str, ...] = ()
    progress: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> ExperimentConfig:
        """One pair, 2 seeds, K = 2, tiny budgets, one student of each kind of claim
        (:data:`~bezkit.experiments.protocol.QUICK_STUDENTS`): under a minute on 2 cores."""
        base: dict[str, Any] = dict(
            seeds=2,
            rounds=2,
            student_rounds=1,
            methods=QUICK_STUDENTS,
            hidden=64,
            flow_steps=400,
            baseline_steps=200,
            round_steps=150,
            student_steps=60,
            n_pairs=1024,
            teacher_steps=16,
            n_eval=1024,
            eval_draws=2,
            many_steps=16,
            n_projections=64,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def full(cls, **overrides: Any) -> ExperimentConfig:
        """The whole protocol: 5 seeds, K = 4, a harder pair, every reading."""
        base: dict[str, Any] = dict(
            pairs=[("8gaussians", "moons"), ("gaussian", "checkerboard")],
            seeds=5,
            rounds=4,
            student_rounds=2,
            methods=FULL_STUDENTS,
            baselines=BASELINE_METHODS,
        )
        base.update(overrides)
        return cls(**base)

    def seed_list(self) -> list[int]:
        """The training seeds ``seed, seed + 1, ..., seed + seeds - 1``."""
        return [self.seed + i for i in range(self.seeds)]

    def validate(self) -> None:
        """Every bad option is an error here, before anything is trained."""
        self._validate_counts()
        self._validate_names()
        if not self.pairs:
            raise ValueError("no (source, target) pairs selected")
        if not 0.0 < self.held_out_fraction < 1.0:
            raise ValueError(
                f"the held-out fraction must lie strictly between 0 and 1, got "
                f"{self.held_out_fraction!r}"
            )
        for src, tgt in self.pairs:
            for offset, name in enumerate((src, tgt)):
                self._validate_points(name, self.seed + offset)
        factors = self.budget_factors
        if not factors or any(
            not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in factors
        ):
            raise ValueError(f"budget_factors must be ints >= 1, got {factors!r}")
        if len(set(factors)) != len(factors) or list(factors) != sorted(factors):
            raise ValueError(f"budget_factors must be distinct and increasing, got {factors!r}")
        if not (isinstance(self.sigma, (int, float)) and 0.0 <= self.sigma < float("inf")):
            raise ValueError(f"sigma must be a finite number >= 0, got {self.sigma!r}")
        if self.full_ot_points < 2:
            raise ValueError(f"full_ot_points must be >= 2, got {self.full_ot_points}")
        if not self.eval_steps or any(s < 1 for s in self.eval_steps):
            raise ValueError(f"eval_steps must be a list of ints >= 1, got {self.eval_steps}")
        if self.w2 not in ("sliced", "exact"):
            raise ValueError(f"w2 must be 'sliced' or 'exact', got {self.w2!r}")
        if (self.w2 == "exact" or self.exact_methods) and self.n_eval > 8192:
            raise ValueError(f"n_eval must be <= 8192 for exact W2, got {self.n_eval}")

    def student_budgets(self) -> list[int]:
        """The students' optimiser steps, one per budget: ``student_steps * f``."""
        return [self.student_steps * f for f in self.budget_factors]

    def _validate_points(self, name: str, seed: int) -> None:
        """A point file must split into two parts big enough to measure (before any training)."""
        sampler = get_sampler(name)
        if isinstance(sampler, ArraySampler):
            try:
                train, held = split_points(
                    sampler.points, self.held_out_fraction, seed + SPLIT_OFFSET
                )
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
            # refused here, before any training; the run itself warns about noisy parts
            check_split_sizes(
                name, train.shape[0], held.shape[0], self.held_out_fraction, warn=False
            )

    def _validate_counts(self) -> None:
        for name in ("seeds", "rounds", "student_rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                what = {"seeds": "training seeds", "rounds": "reflow rounds K"}.get(name, name)
                raise ValueError(f"the number of {what} must be an int >= 1, got {value!r}")
        if self.student_rounds > self.rounds:
            raise ValueError(
                f"student_rounds ({self.student_rounds}) cannot exceed rounds ({self.rounds})"
            )
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def _validate_names(self) -> None:
        for what, names, known in (
            ("method", self.methods, tuple(STUDENTS)),
            ("baseline", self.baselines, BASELINE_METHODS),
            ("chain kind", self.chains, CHAIN_KINDS),
        ):
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"unknown {what}(s) {', '.join(bad)}; known: {', '.join(known)}")
            # each name is one stage of a pair (its seeds, its stored results): twice is a mistake
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                option = {"chain kind": "chains"}.get(what, f"{what}s")
                raise ValueError(
                    f"{what}(s) {', '.join(twice)} given more than once (--{option}): "
                    "give each once"
                )
        if not self.methods and not self.chains:
            raise ValueError("nothing to run: no methods and no chains selected")
        if "bezier-cubic-uniform" in self.methods and "otcfm" not in self.baselines:
            raise ValueError("bezier-cubic-uniform needs the otcfm baseline (its second teacher)")
        unknown = [m for m in self.exact_methods if m not in self.methods]
        if unknown:
            raise ValueError(f"exact_methods {', '.join(unknown)} are not among the methods run")

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict (``results.json``'s ``config``)."""
        return asdict(self)
