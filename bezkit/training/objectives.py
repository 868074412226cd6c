"""The flow-matching regression, for any path, target and time distribution (METHODS.md section 2).

    L(theta) = E_{(X0, X1, G) ~ coupling, t ~ p(t)} || v_theta(B(t), t) - target(t) ||^2

``target`` is the tangent ``B'(t)``, the endpoint velocity ``(X1 - B(t)) / (1 - t)`` (exact, in
closed form, up to t = 1) or, for an N-step sampler (``grid_steps=N``), the secant
``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)`` on the grid ``t_i = i / N``, whose N Euler steps trace
the curve's grid points. With the linear path and ``t`` fixed at 0 this is the one-step
distillation loss ``||v(Z0, 0) - (Z1 - Z0)||^2``; with ``t`` on ``{0, 1/N, ...}`` the N-step one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import Pairs
from bezkit.models.ensemble import seed_block_size
from bezkit.paths.bezier import BezierPath, LinearPath
from bezkit.paths.targets import TargetKind, check_target, regression_target
from bezkit.paths.time_sampling import TimeSampler, UniformTime

__all__ = ["FlowMatchingLoss"]


class FlowMatchingLoss:
    """``loss(model, pairs, generator) = mean ||v_theta(B(t), t) - target(t)||^2`` over the batch.

    ``t ~ time_sampler`` (default uniform on [0, 1]) from ``generator``; ``B`` is ``path`` (default
    the straight line) through ``pairs.guides``; ``target`` is ``"tangent"`` (``B'(t)``),
    ``"endpoint"`` (``(X1 - B(t)) / (1 - t)``, exact up to t = 1) or ``"secant"`` with
    ``grid_steps=N`` (``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)`` on the grid ``t_i = i / N``).
    """

    def __init__(
        self,
        path: BezierPath | None = None,
        *,
        target: TargetKind = "tangent",
        time_sampler: TimeSampler | None = None,
        grid_steps: int | None = None,
        t_max: float | None = None,
    ) -> None:
        if t_max is not None:
            warnings.warn(
                "FlowMatchingLoss(t_max=...) is deprecated and ignored: the endpoint target is "
                "now exact for every t in [0, 1]",
                DeprecationWarning,
                stacklevel=2,
            )
        check_target(target, grid_steps)
        self.path = path if path is not None else LinearPath()
        self.target = target
        self.grid_steps = grid_steps
        self.time_sampler = time_sampler if time_sampler is not None else UniformTime()

    def __call__(
        self,
        model: nn.Module,
        pairs: Pairs,
        generator: torch.Generator | Sequence[torch.Generator],
    ) -> Tensor:
        """The loss on ``pairs``; with a sequence of S generators (a seed-blocked batch, see
        ``bezkit.models.ensemble``) the mean over seeds of each block's loss."""
        if not isinstance(generator, torch.Generator):
            return self.block_losses(model, pairs, generator).mean()
        t = self.time_sampler(len(pairs), generator).to(pairs.x0.device, pairs.x0.dtype)
        sample = self.path.sample(pairs.x0, pairs.x1, t, pairs.guides)
        target = regression_target(sample, self.target, grid_steps=self.grid_steps)
        return (model(sample.x_t, t) - target).pow(2).mean()

    def block_losses(
        self, model: nn.Module, pairs: Pairs, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """Per-seed losses ``(S,)`` of a seed-blocked batch: block ``s`` draws its times from
        ``generators[s]`` exactly as a solo call with that generator would."""
        gens = list(generators)
        n = seed_block_size(len(pairs), len(gens))
        t = torch.cat([self.time_sampler(n, g) for g in gens]).to(pairs.x0.device, pairs.x0.dtype)
        sample = self.path.sample(pairs.x0, pairs.x1, t, pairs.guides)
        target = regression_target(sample, self.target, grid_steps=self.grid_steps)
        return (model(sample.x_t, t) - target).pow(2).reshape(len(gens), -1).mean(dim=1)

    def __repr__(self) -> str:
        grid = "" if self.grid_steps is None else f", grid_steps={self.grid_steps}"
        return (
            f"FlowMatchingLoss({self.path!r}, target={self.target!r}{grid}, {self.time_sampler!r})"
        )
