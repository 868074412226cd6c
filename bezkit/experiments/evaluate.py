"""Evaluate every model and coupling of the experiment the same way (METHODS.md sections 5-6).

``EvalDraws`` holds ``D`` evaluation draws of one training seed, shared by every method of that
seed (so differences are paired within the seed; every seed has its own draws, so the spread over
seeds includes the evaluation noise): for draw ``d`` a source sample ``x0[d]`` (where the sampler
starts), a held-out target sample ``reference[d]`` (never used for training) and an independent
source sample ``source_ref[d]`` (the reference of the X0 side). Every W2 below is a list with one value per draw,
measured with the run's estimator: exact (POT) or sliced with seeded directions shared by all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import Pairs
from bezkit.data.toy2d import Sampler
from bezkit.metrics.crossings import CrossingStats, coupling_crossings, trajectory_crossings
from bezkit.metrics.path_metrics import (
    curvature,
    normalised_path_energy,
    normalised_straightness,
    path_energy,
    straightness,
    trajectory_velocities,
    transport_cost,
)
from bezkit.metrics.wasserstein import sliced_wasserstein2, wasserstein2
from bezkit.solvers.ode import ODESolution, solve_ode

__all__ = [
    "EvalDraws",
    "FlowEvaluation",
    "PathMetrics",
    "StepsEvaluation",
    "evaluate_chain_model",
    "evaluate_coupling",
    "evaluate_flow",
    "evaluate_student",
    "make_eval_draws",
]

Generate = Callable[[nn.Module, Tensor, int], Tensor]
W2Estimator = Callable[[Tensor, Tensor], float]


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
    second_sample: Sampler | None = None,
) -> EvalDraws:
    """``draws`` seeded evaluation draws of size ``n``, with the noise floor of each: the W2 between
    two real samples of the target distribution, what a perfect sampler would score (it describes
    the estimator; it is not a significance threshold). The second sample is drawn from
    ``second_sample`` (for a point file: its training part, disjoint from the held-out part, so
    the floor compares two real samples as a model's samples are compared) or, by default, from
    ``held_out`` itself (a named distribution: independent draws). The source floor is the same
    with two independent source samples."""
    g = torch.Generator().manual_seed(seed + 10_007)
    ev = EvalDraws(
        x0=[source.sample(n, g) for _ in range(draws)],
        reference=[held_out.sample(n, g) for _ in range(draws)],
        source_ref=[source.sample(n, g) for _ in range(draws)],
        estimator=estimator,
        n_projections=n_projections,
        projection_seed=seed + 20_011,
    )
    other = held_out if second_sample is None else second_sample
    ev.noise_floor = ev.target_w2([other.sample(n, g) for _ in range(draws)])
    ev.source_noise_floor = ev.source_w2([source.sample(n, g) for _ in range(draws)])
    return ev


@dataclass(frozen=True)
class StepsEvaluation:
    """The samples made with one step count: their W2 to the reference (and the exact W2 where
    asked), and the velocity evaluations used (``None`` when a custom sampler made them)."""

    steps: int | None
    nfe: int | None
    w2: float
    w2_exact: float | None = None


@dataclass(frozen=True)
class PathMetrics:
    """Straightness, curvature, cost and crossings of ``n`` trajectories solved with ``steps``
    (METHODS.md section 5), on the solver grid ``t_0 < ... < t_m``:

    - ``straightness``: ``S = sum_i dt_i E||(Z_1 - Z_0) - v(Z_{t_i}, t_i)||^2`` (0 = straight);
    - ``normalised_straightness``: ``S / E||Z_1 - Z_0||^2``;
    - ``curvature``: ``mean_i E||(Z_{t_{i+1}} - Z_{t_i}) / dt_i - (Z_1 - Z_0)||^2``;
    - ``transport_cost``: ``E||Z_1 - Z_0||^2``; ``path_energy``: ``sum_i dt_i E||v(Z_{t_i}, t_i)||^2``;
    - ``crossings``: pairs of trajectories (polylines) that intersect among ``crossings.m``;
    - ``w2_squared`` and ``normalised_path_energy`` (when asked, ``evaluate_flow(npe=True)``):
      the exact ``W2^2`` between the trajectories' starting points and as many reference points,
      and ``NPE = |path_energy - w2_squared| / w2_squared``.
    """

    steps: int | None
    nfe: int
    n: int
    straightness: float
    normalised_straightness: float
    curvature: float
    transport_cost: float
    path_energy: float
    crossings: CrossingStats
    w2_squared: float | None = None
    normalised_path_energy: float | None = None


@dataclass(frozen=True)
class FlowEvaluation:
    """What :func:`evaluate_flow` measures of a flow ``dZ/dt = v(Z, t)``: one
    :class:`StepsEvaluation` per step count (increasing), the path metrics of the largest one
    (``None`` if not asked) and the W2 of the reverse flow's ``Z_0`` (``None`` if not asked)."""

    samples: tuple[StepsEvaluation, ...]
    paths: PathMetrics | None = None
    reverse_w2: float | None = None

    def w2(self, steps: int | None) -> float:
        """The W2 of the samples made with ``steps`` (a ``KeyError`` if not evaluated)."""
        for s in self.samples:
            if s.steps == steps:
                return s.w2
        raise KeyError(
            f"no samples with {steps} steps; evaluated: {[s.steps for s in self.samples]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The one JSON form: ``{"results": [{"steps", "nfe", "w2"[, "w2_exact"]}, ...],
        "path_metrics": {...} | None[, "reverse_w2": float]}``; the bracketed keys appear only
        when measured."""
        results = []
        for s in self.samples:
            row: dict[str, Any] = {"steps": s.steps, "nfe": s.nfe, "w2": s.w2}
            if s.w2_exact is not None:
                row["w2_exact"] = s.w2_exact
            results.append(row)
        out: dict[str, Any] = {
            "results": results,
            "path_metrics": None if self.paths is None else asdict(self.paths),
        }
        if self.reverse_w2 is not None:
            out["reverse_w2"] = self.reverse_w2
        return out


def _path_metrics(
    model: nn.Module,
    sol: ODESolution,
    steps: int | None,
    *,
    crossings: int,
    crossing_seed: int | None,
    npe_reference: Tensor | None = None,
    exact_w2: W2Estimator = wasserstein2,
) -> PathMetrics:
    """The :class:`PathMetrics` of a recorded solve; crossings among its first ``crossings``
    trajectories, or a seeded random subset of them when ``crossing_seed`` is given; with
    ``npe_reference`` the NPE against its first ``n`` points (``exact_w2``)."""
    traj, times = sol.recorded_trajectory(), sol.times
    n = traj.shape[1]
    m = min(crossings, n)
    if crossing_seed is None:
        subset = traj[:, :m]
    else:
        g = torch.Generator().manual_seed(crossing_seed)
        subset = traj[:, torch.randperm(n, generator=g)[:m]]
    vel = trajectory_velocities(model, traj, times)
    energy = path_energy(model, traj, times, velocities=vel)
    w2_squared = npe = None
    if npe_reference is not None:
        w2_squared = exact_w2(traj[0], npe_reference[:n]) ** 2
        npe = normalised_path_energy(energy, w2_squared)
    return PathMetrics(
        steps=steps,
        nfe=sol.nfe,
        n=n,
        straightness=straightness(model, traj, times, velocities=vel),
        normalised_straightness=normalised_straightness(model, traj, times, velocities=vel),
        curvature=curvature(traj, times),
        transport_cost=transport_cost(traj[0], traj[-1]),
        path_energy=energy,
        crossings=trajectory_crossings(subset),
        w2_squared=w2_squared,
        normalised_path_energy=npe,
    )


@torch.no_grad()
def evaluate_flow(
    model: nn.Module,
    x0: Tensor,
    reference: Tensor,
    *,
    steps: Sequence[int | None],
    method: str = "euler",
    w2: W2Estimator = wasserstein2,
    exact_w2: W2Estimator = wasserstein2,
    exact_steps: Sequence[int] = (),
    generate: Generate | None = None,
    paths: bool = False,
    trajectories: int | None = None,
    crossings: int = 200,
    crossing_seed: int | None = None,
    reverse_to: Tensor | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    npe: bool = False,
) -> FlowEvaluation:
    """Sample the flow ``dZ/dt = model(Z, t)`` from ``x0`` once per step count and measure it.

    For every ``s`` in ``steps`` (increasing; ``None`` for the adaptive ``dopri5``): the samples
    ``Z_1`` of ``method`` with ``s`` steps (or ``generate(model, x0, s)``), their ``w2(Z_1,
    reference)`` and, for ``s`` in ``exact_steps``, ``exact_w2(Z_1, reference)``. With ``paths``:
    the :class:`PathMetrics` at the largest step count, on all trajectories of that solve, or on a
    separate solve of the first ``trajectories`` points of ``x0`` when given; crossings among
    ``crossings`` of them (the first ones, or a subset drawn with ``crossing_seed``). With
    ``reverse_to``: the reverse flow from ``reference`` (``t = 1 -> 0``, the largest step count)
    and the ``w2`` of its ``Z_0`` to ``reverse_to``. With ``npe`` (and ``paths``): the path
    metrics' normalised path energy against ``reference`` (``exact_w2``). Samples with NaN or inf
    raise ``ValueError``.
    """
    if not steps:
        raise ValueError("steps must name at least one step count")
    if generate is not None and (paths or reverse_to is not None):
        raise ValueError(
            "a custom generate gives samples only: paths and reverse_to need solve_ode"
        )
    model.eval()
    ordered: list[int | None] = [None]  # dopri5 is adaptive: one run, its own step count
    if method != "dopri5":
        ordered = [*sorted({int(s or 1) for s in steps})]
    last = ordered[-1]
    samples, last_sol = [], None
    for s in ordered:
        if generate is not None:
            x1, nfe = generate(model, x0, int(s or 1)), None
        else:
            record = paths and trajectories is None and s == last
            sol = solve_ode(
                model, x0, method=method, steps=s or 1, record=record, atol=atol, rtol=rtol
            )
            x1, nfe, last_sol = sol.x, sol.nfe, sol
        if not torch.isfinite(x1).all():
            raise ValueError(
                f"the flow produced NaN or inf with {method} at {s} steps; the model may have "
                "diverged"
            )
        exact = exact_w2(x1, reference) if s in exact_steps else None
        samples.append(StepsEvaluation(steps=s, nfe=nfe, w2=w2(x1, reference), w2_exact=exact))
    reverse = None
    if reverse_to is not None:
        back = solve_ode(
            model,
            reference,
            method=method,
            steps=last or 1,
            t_start=1.0,
            t_end=0.0,
            atol=atol,
            rtol=rtol,
        ).x
        reverse = w2(back, reverse_to)
    path_metrics = None
    if paths:
        if trajectories is not None:
            last_sol = solve_ode(
                model,
                x0[:trajectories],
                method=method,
                steps=last or 1,
                record=True,
                atol=atol,
                rtol=rtol,
            )
        assert last_sol is not None  # generate is None here, so every step count was solved
        path_metrics = _path_metrics(
            model,
            last_sol,
            last,
            crossings=crossings,
            crossing_seed=crossing_seed,
            npe_reference=reference if npe else None,
            exact_w2=exact_w2,
        )
    return FlowEvaluation(samples=tuple(samples), paths=path_metrics, reverse_w2=reverse)


@torch.no_grad()
def evaluate_student(
    model: nn.Module,
    draws: EvalDraws,
    steps: Sequence[int],
    *,
    generate: Generate | None = None,
    exact_steps: Sequence[int] = (),
) -> dict[str, Any]:
    """``{"w2": {"<steps>": [per draw]}, "w2_exact": {...}}``: per draw, the
    :func:`evaluate_flow` W2 of the samples made with ``steps`` model evaluations
    (``generate(model, x0, steps)``, default Euler) to the held-out reference; ``exact_steps``
    also get an exact W2 (POT) beside the run's estimator."""
    evals = [
        evaluate_flow(
            model,
            x0,
            ref,
            steps=steps,
            w2=draws.w2,
            exact_w2=partial(draws.w2, exact=True),
            exact_steps=exact_steps,
            generate=generate,
        )
        for x0, ref in zip(draws.x0, draws.reference, strict=True)
    ]
    out: dict[str, Any] = {"w2": {}, "w2_exact": {}}
    for i, first in enumerate(evals[0].samples):
        out["w2"][str(first.steps)] = [e.samples[i].w2 for e in evals]
        if first.w2_exact is not None:
            out["w2_exact"][str(first.steps)] = [e.samples[i].w2_exact for e in evals]
    return out


@torch.no_grad()
def evaluate_chain_model(
    model: nn.Module,
    draws: EvalDraws,
    *,
    many_steps: int,
    m_paths: int = 1024,
    m_crossings: int = 200,
    adaptive: bool = True,
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """A chain round's model, per draw through :func:`evaluate_flow`: W2 at one and
    ``many_steps`` Euler steps (the X1 side of the pairs it makes), W2 of its reverse-ODE X0 from
    held-out data to the source (the X0 side of the data-anchored pairs it makes), and, on the
    first ``m_paths`` trajectories, straightness, transport cost and crossings per trajectory
    (among the first ``m_crossings``), and their normalised path energy NPE (against as many
    reference points, exact W2; Tong et al. 2024, METHODS.md section 5). With ``adaptive``: also ``w2_adaptive``, the W2 of the samples
    of the adaptive ``dopri5`` solver (``atol = rtol = tolerance``), and its ``nfe_adaptive``: the
    flow's many-step W2 without the fixed grid's discretisation error."""
    out: dict[str, Any] = {"w2": {"1": [], str(many_steps): []}, "reverse_x0_w2": []}
    if adaptive:
        out.update(w2_adaptive=[], nfe_adaptive=[])
    out.update(
        straightness=[], transport_cost=[], crossings_per_trajectory=[], normalised_path_energy=[]
    )
    for x0, ref, src in zip(draws.x0, draws.reference, draws.source_ref, strict=True):
        ev = evaluate_flow(
            model,
            x0,
            ref,
            steps=(1, many_steps),
            w2=draws.w2,
            exact_w2=partial(draws.w2, exact=True),
            paths=True,
            trajectories=m_paths,
            crossings=m_crossings,
            reverse_to=src,
            npe=True,
        )
        assert ev.paths is not None and ev.reverse_w2 is not None  # paths and reverse_to asked
        out["w2"]["1"].append(ev.w2(1))
        out["w2"][str(many_steps)].append(ev.w2(many_steps))
        out["reverse_x0_w2"].append(ev.reverse_w2)
        out["straightness"].append(ev.paths.straightness)
        out["transport_cost"].append(ev.paths.transport_cost)
        out["crossings_per_trajectory"].append(ev.paths.crossings.per_trajectory)
        out["normalised_path_energy"].append(ev.paths.normalised_path_energy)
        if adaptive:
            ad = evaluate_flow(
                model,
                x0,
                ref,
                steps=(None,),
                method="dopri5",
                w2=draws.w2,
                atol=tolerance,
                rtol=tolerance,
            )
            out["w2_adaptive"].append(ad.samples[0].w2)
            out["nfe_adaptive"].append(ad.samples[0].nfe)
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
