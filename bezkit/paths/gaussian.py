"""A Gaussian probability path around the straight line (METHODS.md section 1): I-CFM / OT-CFM's
path of constant width ``sigma`` (Tong et al., TMLR 2024).

    x_t = (1 - t) X0 + t X1 + sigma eps,   eps ~ N(0, I),   target  X1 - X0

Given the pair, ``x_t ~ N((1 - t) X0 + t X1, sigma^2 I)`` at every ``t``; the target is the line's
tangent (the conditional velocity of a path of constant width). ``sigma = 0`` is the line itself
and draws no noise, so a run with ``sigma = 0`` is the run without this option, bit for bit.

Only the straight line with the tangent target has it: a curved Bezier path with noise needs a
choice (noise around the curve, a width that varies with t) bezkit does not make, and the
endpoint target ``(X1 - x_t) / (1 - t)`` would put the noise into the target; both are refused.
"""

from __future__ import annotations

import math

from bezkit.paths.bezier import BezierPath

__all__ = ["check_sigma"]


def check_sigma(sigma: float, path: BezierPath | None, target: str) -> float:
    """``sigma`` as a float after checking it is finite and >= 0, and, when > 0, that the path is
    the straight line (``None`` or order 1) and the target the tangent; ``ValueError`` otherwise,
    naming ``sigma``."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise ValueError(f"sigma must be a number >= 0, got {sigma!r}")
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if sigma > 0:
        if path is not None and path.order != 1:
            raise ValueError(
                f"sigma > 0 (a Gaussian path around the line) is defined for the linear path "
                f"only, got {path!r}; use sigma=0 with a Bezier path"
            )
        if target != "tangent":
            raise ValueError(
                f"sigma > 0 needs the tangent target X1 - X0, got target={target!r} (the "
                "endpoint and secant targets would regress on the noise)"
            )
    return float(sigma)
