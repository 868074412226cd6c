"""bezkit: rectified flows, reflow, Bezier distillation and B-DENSE, for teaching and measuring.

The package is laid out like the ideas: ``data`` (where samples come from), ``paths`` (what joins a
pair), ``couplings`` (how pairs are drawn), ``models`` (``model(x, t)``), ``solvers`` (ODEs),
``training``, ``methods`` (the recipes), ``metrics``, ``experiments``, ``plot``/``widgets`` and the CLI.
"""

__version__ = "0.2.0"

__all__ = ["__version__"]
