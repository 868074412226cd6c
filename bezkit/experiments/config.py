"""Configuration of the 2D error-accumulation experiment (``bezkit experiment``).

Methods (each trained and evaluated for every reflow round k = 1..K unless noted):

- ``rf``: the k-rectified flow (1-RF on independent pairs, then reflow, fine-tuned from the teacher).
- ``rf-distill``: the k-RF distilled into a one-step student on its own forward pairs.
- ``anchored-distill``: one-step distillation on the k-RF's *data-anchored* pairs (real X1, X0 from the
  reverse ODE): order-1 Bezier distillation with a real endpoint. Separates the endpoint's effect
  from the curve's.
- ``bezier-quadratic``: quadratic Bezier distillation, guide from the k-RF (one Euler step to s = 1/2,
  ``control`` placement), real endpoint, ``endpoint`` target.
- ``bezier-cubic``: cubic, multi-teacher: guide 1 from the k-RF, guide 2 from the OT-CFM flow.
- ``bdense``: B-DENSE with 4 branches on the k-RF's trajectories.
- ``otcfm``, ``full-ot``: the optimal-transport baselines (no k: reported at k = 1).
Ablations available by name, not run by default: ``bezier-quadratic-interp`` (interpolate placement),
``bezier-quadratic-tangent`` (tangent target), ``bezier-quadratic-teacher`` (teacher endpoint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bezkit.data.toy2d import get_sampler

__all__ = ["ABLATIONS", "DEFAULT_METHODS", "KNOWN_METHODS", "PER_ROUND", "ExperimentConfig"]

DEFAULT_METHODS: tuple[str, ...] = (
    "rf",
    "rf-distill",
    "anchored-distill",
    "bezier-quadratic",
    "bezier-cubic",
    "bdense",
    "otcfm",
    "full-ot",
)
ABLATIONS: tuple[str, ...] = (
    "bezier-quadratic-interp",
    "bezier-quadratic-tangent",
    "bezier-quadratic-teacher",
)
KNOWN_METHODS: tuple[str, ...] = DEFAULT_METHODS + ABLATIONS
PER_ROUND = tuple(m for m in KNOWN_METHODS if m not in ("otcfm", "full-ot"))


@dataclass
class ExperimentConfig:
    """Everything that fixes a run; ``quick()`` is the one-minute version used by the tests."""

    pairs: list[tuple[str, str]] = field(
        default_factory=lambda: [("8gaussians", "moons"), ("gaussian", "moons")]
    )
    rounds: int = 3
    methods: tuple[str, ...] = DEFAULT_METHODS
    seed: int = 0
    hidden: int = 256
    depth: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    flow_steps: int = 3000
    round_steps: int = 1500
    n_pairs: int = 10_000
    teacher_steps: int = 100
    full_ot_points: int = 4096
    bdense_branches: int = 4
    n_eval: int = 2000
    eval_steps: tuple[int, ...] = (1, 2, 4, 8, 100)
    m_crossings: int = 200
    progress: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> ExperimentConfig:
        base = dict(
            pairs=[("8gaussians", "moons")],
            rounds=2,
            hidden=128,
            flow_steps=1000,
            round_steps=400,
            n_pairs=3000,
            full_ot_points=1024,
            n_eval=1000,
            m_crossings=150,
        )
        base.update(overrides)
        return cls(**base)

    def validate(self) -> None:
        """Every bad option is an error here, before anything is trained."""
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(
                f"the number of reflow rounds K must be an int >= 1, got {self.rounds!r}"
            )
        unknown = [m for m in self.methods if m not in KNOWN_METHODS]
        if unknown:
            raise ValueError(
                f"unknown method(s) {', '.join(unknown)}; known: {', '.join(KNOWN_METHODS)}"
            )
        if not self.methods:
            raise ValueError("no methods selected")
        if not self.pairs:
            raise ValueError("no (source, target) pairs selected")
        for src, tgt in self.pairs:
            get_sampler(src)
            get_sampler(tgt)
        for name in (
            "hidden",
            "depth",
            "batch_size",
            "flow_steps",
            "round_steps",
            "n_pairs",
            "teacher_steps",
            "n_eval",
            "m_crossings",
            "bdense_branches",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.full_ot_points < 2:
            raise ValueError(f"full_ot_points must be >= 2, got {self.full_ot_points}")
        if not self.eval_steps or any(s < 1 for s in self.eval_steps):
            raise ValueError(f"eval_steps must be a list of ints >= 1, got {self.eval_steps}")
        if self.n_eval > 8192:
            raise ValueError(f"n_eval must be <= 8192 for exact W2, got {self.n_eval}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
