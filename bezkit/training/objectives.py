"""The flow-matching regression, for any path, target and time distribution (METHODS.md section 2).

    L(theta) = E_{(X0, X1, G) ~ coupling, t ~ p(t)} || v_theta(B(t), t) - target(t) ||^2

``target`` is the tangent ``B'(t)``, the endpoint velocity ``(X1 - B(t)) / (1 - t)`` (exact, in
closed form, up to t = 1) or, for an N-step sampler (``grid_steps=N``), the secant
``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)`` on the grid ``t_i = i / N``, whose N Euler steps trace
the curve's grid points. With the linear path and ``t`` fixed at 0 this is the one-step
distillation loss ``||v(Z0, 0) - (Z1 - Z0)||^2``; with ``t`` on ``{0, 1/N, ...}`` the N-step one.
With ``sigma > 0`` (linear path, tangent target: I-CFM / OT-CFM's Gaussian path,
``bezkit.paths.gaussian``) the network is queried at ``B(t) + sigma eps`` instead of ``B(t)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import Pairs
from bezkit.models.ensemble import seed_block_size
from bezkit.paths.bezier import BezierPath, LinearPath
from bezkit.paths.gaussian import check_sigma
from bezkit.paths.targets import TargetKind, check_target
from bezkit.paths.time_sampling import TimeSampler, UniformTime

__all__ = ["FlowMatchingLoss", "SeedBlockedLoss", "blocked_draws"]


def blocked_draws(
    n: int,
    generators: Sequence[torch.Generator],
    draw: Callable[[int, torch.Generator], Tensor],
) -> Tensor:
    """The per-sample random draws of a batch of ``n`` made of ``S = len(generators)`` seed blocks
    (``bezkit.models.ensemble``): block ``s`` is ``draw(n / S, generators[s])``, exactly what a solo
    batch with that generator draws (with one generator, ``draw(n, generator)``)."""
    block = seed_block_size(n, len(generators))
    return torch.cat([draw(block, g) for g in generators])


class SeedBlockedLoss(ABC):
    """A loss ``loss(model, pairs, generator)`` that also trains S seeds at once.

    With one generator, ``single_loss``; with a sequence of S generators (a seed-blocked batch, see
    ``bezkit.models.ensemble``), the mean over seeds of ``block_losses``, each block's loss computed
    exactly as a solo call with its generator would (``blocked_draws``).
    """

    def __call__(
        self,
        model: nn.Module,
        pairs: Pairs,
        generator: torch.Generator | Sequence[torch.Generator],
    ) -> Tensor:
        """The loss on ``pairs``; with a sequence of S generators the mean of the S block losses."""
        if not isinstance(generator, torch.Generator):
            return self.block_losses(model, pairs, generator).mean()
        return self.single_loss(model, pairs, generator)

    @abstractmethod
    def single_loss(self, model: nn.Module, pairs: Pairs, generator: torch.Generator) -> Tensor:
        """The loss on ``pairs`` with its random draws from ``generator``."""

    @abstractmethod
    def block_losses(
        self, model: nn.Module, pairs: Pairs, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """Per-seed losses ``(S,)`` of a seed-blocked batch."""


class FlowMatchingLoss(SeedBlockedLoss):
    """``loss(model, pairs, generator) = mean ||v_theta(B(t), t) - target(t)||^2`` over the batch.

    ``t ~ time_sampler`` (default uniform on [0, 1]) from ``generator``; ``B`` is ``path`` (default
    the straight line) through ``pairs.guides``; ``target`` is ``"tangent"`` (``B'(t)``),
    ``"endpoint"`` (``(X1 - B(t)) / (1 - t)``, exact up to t = 1) or ``"secant"`` with
    ``grid_steps=N`` (``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)`` on the grid ``t_i = i / N``).
    ``sigma > 0`` (linear path and tangent target only): the input is ``B(t) + sigma eps``,
    ``eps ~ N(0, I)`` drawn from ``generator`` after ``t``; ``sigma = 0`` draws nothing.
    """

    def __init__(
        self,
        path: BezierPath | None = None,
        *,
        target: TargetKind = "tangent",
        time_sampler: TimeSampler | None = None,
        grid_steps: int | None = None,
        sigma: float = 0.0,
    ) -> None:
        check_target(target, grid_steps)
        self.sigma = check_sigma(sigma, path, target)
        self.path = path if path is not None else LinearPath()
        self.target = target
        self.grid_steps = grid_steps
        self.time_sampler = time_sampler if time_sampler is not None else UniformTime()

    def single_loss(self, model: nn.Module, pairs: Pairs, generator: torch.Generator) -> Tensor:
        """``mean ||v_theta(B(t), t) - target(t)||^2`` with ``t`` drawn from ``generator``."""
        return self._squared_errors(model, pairs, [generator]).mean()

    def block_losses(
        self, model: nn.Module, pairs: Pairs, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """Per-seed losses ``(S,)`` of a seed-blocked batch: block ``s`` draws its times from
        ``generators[s]`` exactly as a solo call with that generator would."""
        gens = list(generators)
        return self._squared_errors(model, pairs, gens).reshape(len(gens), -1).mean(dim=1)

    def _squared_errors(
        self, model: nn.Module, pairs: Pairs, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """``(v_theta(B(t), t) - target(t))^2`` elementwise, ``t`` drawn block by block."""
        t = blocked_draws(len(pairs), generators, self.time_sampler)
        t = t.to(pairs.x0.device, pairs.x0.dtype)
        sample = self.path.sample(pairs.x0, pairs.x1, t, pairs.guides)
        target = self.path.target(sample, self.target, grid_steps=self.grid_steps)
        x_t = sample.x_t
        if self.sigma > 0:  # sigma = 0 draws nothing: the run without noise, bit for bit
            shape = tuple(pairs.x0.shape[1:])
            eps = blocked_draws(
                len(pairs), generators, lambda m, g: torch.randn((m, *shape), generator=g)
            )
            x_t = x_t + self.sigma * eps.to(x_t.device, x_t.dtype)
        return (model(x_t, t) - target).pow(2)

    def __repr__(self) -> str:
        grid = "" if self.grid_steps is None else f", grid_steps={self.grid_steps}"
        noise = "" if self.sigma == 0 else f", sigma={self.sigma}"
        return (
            f"FlowMatchingLoss({self.path!r}, target={self.target!r}{grid}, "
            f"{self.time_sampler!r}{noise})"
        )
