"""ODE solvers for velocity fields ``model(x, t)``: fixed-step schemes and adaptive dopri5."""

from bezkit.solvers.adaptive import Dopri5Result, dopri5
from bezkit.solvers.branched import bdense_hop_times, sample_bdense
from bezkit.solvers.fixed_step import (
    FIXED_STEP,
    Velocity,
    euler_step,
    heun_step,
    midpoint_step,
    rk4_step,
)
from bezkit.solvers.ode import SOLVERS, ODESolution, solve_ode

__all__ = [
    "FIXED_STEP",
    "SOLVERS",
    "Dopri5Result",
    "ODESolution",
    "Velocity",
    "bdense_hop_times",
    "dopri5",
    "euler_step",
    "heun_step",
    "midpoint_step",
    "rk4_step",
    "sample_bdense",
    "solve_ode",
]
