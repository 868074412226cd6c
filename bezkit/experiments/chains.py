"""Multi-round chains: each round's teacher is the previous round's model (METHODS.md section 6).

Round 1 of every chain is the 1-RF. Round ``k + 1`` is the round-``k`` model fine-tuned on pairs
*made by* round ``k``:

- ``reflow``: ``(X0, ODE_k(X0))``, linear path, tangent target, ``t ~ U[0, 1]`` (Liu et al.);
- ``anchored``: ``(ODE_k^-1(X1), X1)`` for real held-in ``X1``, the same linear loss;
- ``bezier``: the same data-anchored pairs (same endpoints as ``anchored``: only the path differs)
  on the quadratic whose control point is the round's own ODE state ``Z`` at ``s = 1/2`` (guide
  state ``ode``, ``control`` placement), tangent target, ``t ~ U[0, 1]``: the Bezier-distilled
  flow of round ``k`` is round ``k + 1``'s teacher. The curve's midpoint
  ``B(1/2) = (X0 + X1) / 4 + Z / 2`` is half-way between the chord's midpoint and the teacher's
  state, so each round halves the teacher's bend and the chain *can* straighten; its ``t = 0``
  target ``2 (Z - X0)`` is the teacher's mean velocity over ``[0, 1/2]``, not its own velocity
  at ``t = 0`` (the fixed point of the 0.2 chain, whose guide was the Euler step
  ``X0 + v(X0, 0) / 2``). The tangent target keeps multi-step sampling on the curve; the endpoint
  target does not (its field points at X1 from every curve point, so Euler steps leave the curve:
  a quick run's Bezier chain went from many-step W2 0.2 to 1.8 in one round with it). The
  one-difference comparison is ``bezier`` against ``anchored``.

The seed's claim is that a real endpoint (``anchored``, ``bezier``) stops the error that
accumulates along the ``reflow`` chain, whose X1 are generated every round.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bezkit.couplings.pairs import PairPool
from bezkit.experiments.pools import Pool, PoolMaker
from bezkit.paths.bezier import BezierPath
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import LossFn

__all__ = ["CHAIN_ABOUT", "ChainStep", "chain_step"]

CHAIN_ABOUT: dict[str, str] = {
    "reflow": "k-RF -> its forward pairs (generated X1) -> (k+1)-RF",
    "anchored": "round k -> its data-anchored pairs (real X1, reverse-ODE X0) -> round k+1",
    "bezier": "round k -> the same data-anchored pairs on the quadratic with round k's ODE state "
    "at s = 1/2 as control point, tangent target -> Bezier-distilled round k+1",
}


@dataclass
class ChainStep:
    """How round ``k + 1`` of a chain is trained from round ``k``'s model."""

    loss: LossFn
    pool: PairPool
    made: Pool


def chain_step(kind: str, model: nn.Module, pools: PoolMaker) -> ChainStep:
    """The loss and the pairs (made by ``model``) that train the next round of a ``kind`` chain."""
    if kind == "reflow":
        made = pools.reflow(model)
        return ChainStep(FlowMatchingLoss(), made.pool, made)
    if kind == "anchored":
        made = pools.anchored(model)
        return ChainStep(FlowMatchingLoss(), made.linear(), made)
    if kind == "bezier":
        made = pools.anchored(model, guide="ode")
        return ChainStep(FlowMatchingLoss(BezierPath(2), target="tangent"), made.pool, made)
    raise ValueError(f"unknown chain kind {kind!r}; known: {', '.join(CHAIN_ABOUT)}")
