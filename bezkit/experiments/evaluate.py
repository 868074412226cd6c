"""Evaluate every model and coupling of the experiment the same way (METHODS.md sections 5-6).

``EvalDraws`` holds ``D`` evaluation draws, shared by every method and seed (so differences are
paired): for draw ``d`` a source sample ``x0[d]`` (where the sampler starts), a held-out target
sample ``reference[d]`` (never used for training) and an independent source sample
``source_ref[d]`` (the reference of the X0 side). Every W2 below is a list with one value per draw,
measured with the run's estimator: exact (POT) or sliced with seeded directions shared by all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import Pairs
from bezkit.data.toy2d import Sampler
from bezkit.metrics.crossings import coupling_crossings, trajectory_crossings
from bezkit.metrics.straightness import straightness, trajectory_velocities, transport_cost
from bezkit.metrics.wasserstein import sliced_wasserstein2, wasserstein2
from bezkit.solvers.ode import solve_ode

__all__ = [
    "EvalDraws",
    "evaluate_chain_model",
    "evaluate_coupling",
    "evaluate_student",
    "make_eval_draws",
]

Generate = Callable[[nn.Module, Tensor, int], Tensor]


def euler_samples(model: nn.Module, x0: Tensor, steps: int) -> Tensor:
    """``steps`` Euler steps of ``dZ/dt = model(Z, t)`` from ``x0`` (NFE = steps)."""
    return solve_ode(model, x0, method="euler", steps=steps).x


@dataclass
class EvalDraws:
    """The evaluation samples of one (source, target) and the W2 estimator used on them."""

    x0: list[Tensor]
    reference: list[Tensor]
    source_ref: list[Tensor]
    estimator: str
    n_projections: int = 256
    projection_seed: int = 0
    noise_floor: list[float] = field(default_factory=list)
    source_noise_floor: list[float] = field(default_factory=list)

    def w2(self, a: Tensor, b: Tensor, *, exact: bool = False) -> float:
        """W2 of two equal-size samples with this run's estimator (``exact`` forces POT)."""
        n = min(a.shape[0], b.shape[0])
        if exact or self.estimator == "exact":
            return wasserstein2(a[:n], b[:n])
        return sliced_wasserstein2(
            a[:n], b[:n], n_projections=self.n_projections, seed=self.projection_seed
        )

    def target_w2(self, samples: Sequence[Tensor], *, exact: bool = False) -> list[float]:
        """Per draw: W2 of ``samples[d]`` to the held-out ``reference[d]``."""
        return [self.w2(s, r, exact=exact) for s, r in zip(samples, self.reference, strict=True)]

    def source_w2(self, samples: Sequence[Tensor]) -> list[float]:
        """Per draw: W2 of ``samples[d]`` to the independent source sample ``source_ref[d]``."""
        return [self.w2(s, r) for s, r in zip(samples, self.source_ref, strict=True)]


def make_eval_draws(
    source: Sampler,
    held_out: Sampler,
    *,
    n: int,
    draws: int,
    seed: int,
    estimator: str = "sliced",
    n_projections: int = 256,
) -> EvalDraws:
    """``draws`` seeded evaluation draws of size ``n``, with the noise floor of each: the W2 of a
    fresh held-out (or source) sample of size ``n`` to that draw's reference, what a perfect
    sampler would score (it describes the estimator; it is not a significance threshold)."""
    g = torch.Generator().manual_seed(seed + 10_007)
    ev = EvalDraws(
        x0=[source.sample(n, g) for _ in range(draws)],
        reference=[held_out.sample(n, g) for _ in range(draws)],
        source_ref=[source.sample(n, g) for _ in range(draws)],
        estimator=estimator,
        n_projections=n_projections,
        projection_seed=seed + 20_011,
    )
    ev.noise_floor = ev.target_w2([held_out.sample(n, g) for _ in range(draws)])
    ev.source_noise_floor = ev.source_w2([source.sample(n, g) for _ in range(draws)])
    return ev


@torch.no_grad()
def evaluate_student(
    model: nn.Module,
    draws: EvalDraws,
    steps: Sequence[int],
    *,
    generate: Generate | None = None,
    exact_steps: Sequence[int] = (),
) -> dict[str, Any]:
    """``{"w2": {"<steps>": [per draw]}, "w2_exact": {...}}``: W2 of the samples made with
    ``steps`` model evaluations (``generate(model, x0, steps)``, default Euler) to the held-out
    reference; ``exact_steps`` also get an exact W2 (POT) beside the run's estimator."""
    model.eval()
    gen = generate or euler_samples
    out: dict[str, Any] = {"w2": {}, "w2_exact": {}}
    for s in sorted(set(steps)):
        samples = [gen(model, x0, s) for x0 in draws.x0]
        out["w2"][str(s)] = draws.target_w2(samples)
        if s in exact_steps:
            out["w2_exact"][str(s)] = draws.target_w2(samples, exact=True)
    return out


@torch.no_grad()
def evaluate_chain_model(
    model: nn.Module,
    draws: EvalDraws,
    *,
    many_steps: int,
    m_paths: int = 1024,
    m_crossings: int = 200,
) -> dict[str, Any]:
    """A chain round's model: W2 at one and ``many_steps`` Euler steps (the X1 side of the pairs
    it makes), W2 of its reverse-ODE X0 from held-out data to the source (the X0 side of the
    data-anchored pairs it makes), and, on the first ``m_paths`` trajectories of each draw,
    straightness, transport cost and crossings per trajectory (among ``m_crossings``)."""
    model.eval()
    out: dict[str, Any] = {"w2": {"1": [], str(many_steps): []}, "reverse_x0_w2": []}
    out.update(straightness=[], transport_cost=[], crossings_per_trajectory=[])
    for x0, ref, src in zip(draws.x0, draws.reference, draws.source_ref, strict=True):
        out["w2"]["1"].append(draws.w2(euler_samples(model, x0, 1), ref))
        out["w2"][str(many_steps)].append(draws.w2(euler_samples(model, x0, many_steps), ref))
        back = solve_ode(model, ref, steps=many_steps, t_start=1.0, t_end=0.0).x
        out["reverse_x0_w2"].append(draws.w2(back, src))
        sol = solve_ode(model, x0[:m_paths], steps=many_steps, record=True)
        traj = sol.recorded_trajectory()
        v = trajectory_velocities(model, traj, sol.times)
        out["straightness"].append(straightness(model, traj, sol.times, velocities=v))
        out["transport_cost"].append(transport_cost(traj[0], traj[-1]))
        cross = trajectory_crossings(traj[:, :m_crossings])
        out["crossings_per_trajectory"].append(cross.per_trajectory)
    return out


def evaluate_coupling(pairs: Pairs, draws: EvalDraws, *, m_crossings: int = 500) -> dict[str, Any]:
    """Both sides of a coupling: per draw, W2 of (a slice of) its X0 to the source and of its X1
    to the held-out target; its transport cost and the crossing fraction of its straight segments.
    For a reflow coupling X0 is fresh source and X1 generated; for a data-anchored one the
    reverse, so the generated side is the one that carries the error."""
    n = draws.x0[0].shape[0]
    total = pairs.x0.shape[0]
    x0s, x1s = [], []
    for d in range(len(draws.x0)):
        idx = torch.arange(d * n, (d + 1) * n) % total
        x0s.append(pairs.x0[idx])
        x1s.append(pairs.x1[idx])
    cross = coupling_crossings(pairs.x0[:m_crossings], pairs.x1[:m_crossings])
    return {
        "x0_w2": draws.source_w2(x0s),
        "x1_w2": draws.target_w2(x1s),
        "transport_cost": transport_cost(pairs.x0, pairs.x1),
        "segment_crossing_fraction": cross.fraction,
    }
