"""ODE solvers for velocity fields ``model(x, t)``: fixed-step schemes and adaptive dopri5."""

from bezkit.solvers.dopri5 import Dopri5Result, dopri5
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
    "ODESolution",
    "solve_ode",
    "SOLVERS",
    "FIXED_STEP",
    "Velocity",
    "euler_step",
    "midpoint_step",
    "heun_step",
    "rk4_step",
    "dopri5",
    "Dopri5Result",
]
