"""Couplings: how pairs (X0, X1) are drawn (METHODS.md section 3)."""

from bezkit.couplings.full_ot import FullOTCoupling
from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.minibatch_ot import MinibatchOTCoupling
from bezkit.couplings.ot_plan import exact_ot_permutation, sinkhorn_plan, squared_cost
from bezkit.couplings.pairs import Coupling, PairPool, Pairs
from bezkit.couplings.reflow import DataAnchoredCoupling, ReflowCoupling, integrate_in_batches

__all__ = [
    "Coupling",
    "DataAnchoredCoupling",
    "FullOTCoupling",
    "IndependentCoupling",
    "MinibatchOTCoupling",
    "PairPool",
    "Pairs",
    "ReflowCoupling",
    "exact_ot_permutation",
    "integrate_in_batches",
    "sinkhorn_plan",
    "squared_cost",
]
